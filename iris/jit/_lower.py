"""Lowering of the offload intrinsics into plain, numba-compilable Python (AST to AST).

Internal module, not part of the public API. ``_rewrite`` parses a function and hands its
``FunctionDef`` to :func:`lower_function`, which changes it in place and returns the
helper functions it created. The result is ordinary Python that runs the same in CPython
and in numba; nothing here imports numba.

What becomes what::

    if_else(c, a, b)                      ->  (a if c else b)
    sum(E for x in IT if P, start)        ->  __iris_sum_N(<free locals>)   a lifted helper:
                                                  acc = start
                                                  for x in IT:
                                                      if not P: continue
                                                      <E's loop-control statements>
                                                      acc = acc + E
                                                  return acc
    any(...) / all(...)                   ->  the same shape, returning True/False early
    sum_while(v, init, cond, nxt, body)   ->  a helper with ``while cond:`` and a safety cap
    break_if(c, value) inside E           ->  ``if c: <stop>`` then ``value``
    continue_if(c, value)                 ->  ``if c: continue`` then ``value``
    *_when = *_if; *_unless(c, v) = *_if(not c, v); *_on_nan(v): stop/skip when v is NaN

Numba compiles neither generator expressions fed to ``sum`` nor statements inside
expressions, hence the lifting: each reduction becomes a helper function whose parameters
are the enclosing function's locals it reads. Helpers are compiled as separate
``numba.njit`` functions that the kernel calls; in plain Python they are plain functions.

Loop-control intrinsics are hoisted out of the element expression into statements
(:meth:`_Lowerer.linearize`). Sub-expressions that are evaluated lazily (``a if c else b``,
``and``/``or``) become ``if`` statements when they contain an intrinsic, so a ``break_if``
in an untaken branch never fires; siblings evaluated earlier are bound to temporaries so
evaluation order is kept.
"""

from __future__ import annotations

import ast
import copy
import itertools
from collections.abc import Callable
from typing import Any

from iris.jit._intrinsics import (
    CONTROL_INTRINSICS,
    WHILE_REDUCTIONS,
    is_builtin_reduction,
    is_intrinsic,
)

__all__ = ["MAX_WHILE_ITERATIONS", "lower_function"]

#: Safety cap of ``sum_while``/``any_while``/``all_while``: a compiled loop cannot be
#: interrupted with Ctrl-C, so a runaway condition raises ``RuntimeError`` instead.
MAX_WHILE_ITERATIONS = 1_000_000_000

_NESTED_SCOPES = (ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp, ast.Lambda,
                  ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_ACC = "__iris_acc"

# Statements to emit when the reduction stops (break) or skips an element (continue).
_Action = Callable[[], list[ast.stmt]]


def lower_function(fdef: ast.FunctionDef, namespace: dict[str, Any],
                   filename: str) -> list[ast.FunctionDef]:
    """Rewrite the intrinsics in ``fdef`` in place.

    Args:
        fdef: the function's definition, with line numbers of its file.
        namespace: the function's globals, to tell intrinsics from the module's own names.
        filename: the source file, for error messages.

    Returns:
        The helper functions the rewritten ``fdef`` calls, to define beside it.

    Raises:
        SyntaxError: an intrinsic is misused (wrong arity, a loop-control intrinsic
            outside a reduction).
    """
    lowerer = _Lowerer(namespace, filename)
    lowerer.lower(fdef, _local_names(fdef))
    for node in [fdef, *lowerer.helpers]:
        lowerer.check_leftovers(node)
    return lowerer.helpers


class _Lowerer:
    def __init__(self, namespace: dict[str, Any], filename: str) -> None:
        self.namespace = namespace
        self.filename = filename
        self.helpers: list[ast.FunctionDef] = []
        self._ids = itertools.count()

    # -- naming and errors -------------------------------------------------------------

    def fresh(self, kind: str) -> str:
        return f"__iris_{kind}_{next(self._ids)}"

    def error(self, node: ast.AST, message: str) -> SyntaxError:
        lineno = getattr(node, "lineno", None)
        col = getattr(node, "col_offset", 0) + 1
        return SyntaxError(message, (self.filename, lineno, col, None))

    def intrinsic_name(self, node: ast.AST, local: set[str]) -> str | None:
        """The intrinsic a call names, if it is one (not shadowed by a local or global)."""
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id not in local and is_intrinsic(node.func.id, self.namespace)):
            return node.func.id
        return None

    # -- the passes -------------------------------------------------------------------

    def lower(self, fdef: ast.FunctionDef, local: set[str]) -> None:
        _IfElse(self, local).visit(fdef)
        _Lifter(self, local).visit(fdef)

    def check_leftovers(self, root: ast.AST) -> None:
        for node in ast.walk(root):
            name = (node.func.id if isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name) else None)
            if name in CONTROL_INTRINSICS and self.intrinsic_name(node, set()) == name:
                raise self.error(node, f"{name}() can only be used in the element expression "
                                       "of a sum/any/all generator or in a *_while body")

    # -- reductions ---------------------------------------------------------------------

    def lift_generator(self, kind: str, gen: ast.GeneratorExp, start: ast.expr | None,
                       call: ast.Call, local: set[str]) -> ast.Call:
        for comp in gen.generators:
            if comp.is_async:
                raise self.error(call, "async generators cannot be offloaded")
        params = sorted(_loaded_names(gen) & local)
        name = self.fresh(kind)
        actions = _reduction_actions(kind)
        stmts, elt = self.linearize(gen.elt, local, actions)
        inner: list[ast.stmt] = [*stmts, *_accumulate(kind, elt)]
        for comp in reversed(gen.generators):
            filters: list[ast.stmt] = [
                ast.If(test=ast.UnaryOp(op=ast.Not(), operand=cond), body=[ast.Continue()],
                       orelse=[]) for cond in comp.ifs]
            inner = [ast.For(target=comp.target, iter=comp.iter, body=[*filters, *inner],
                             orelse=[])]
        body: list[ast.stmt] = []
        args: list[ast.expr] = [ast.Name(id=p, ctx=ast.Load()) for p in params]
        if kind == "sum":
            init: ast.expr = ast.Constant(value=0)
            if start is not None:
                params.append("__iris_start")
                args.append(start)
                init = ast.Name(id="__iris_start", ctx=ast.Load())
            body.append(_assign(_ACC, init))
        body += [*inner, ast.Return(value=_final(kind))]
        return self._add_helper(name, params, body, call, args)

    def lift_while(self, kind: str, call: ast.Call, local: set[str]) -> ast.Call:
        fname = call.func.id  # type: ignore[attr-defined]
        if len(call.args) != 5 or call.keywords:
            raise self.error(call, f"{fname}() takes 5 positional arguments "
                                   "(var, init, cond, next, body)")
        var_node, init, cond, nxt, body_expr = call.args
        if isinstance(var_node, ast.Name):
            var = var_node.id
        elif isinstance(var_node, ast.Constant) and isinstance(var_node.value, str):
            var = var_node.value
        else:
            raise self.error(call, f"the first argument of {fname}() must be the loop "
                                   "variable's name")
        params = sorted(set().union(*(_loaded_names(a) for a in (init, cond, nxt, body_expr)))
                        & local)
        counter = "__iris_n"

        def advance() -> list[ast.stmt]:
            return [_assign(var, copy.deepcopy(nxt))]

        actions = _reduction_actions(kind, before_continue=advance)
        inner_local = local | {var}
        stmts, elt = self.linearize(body_expr, inner_local, actions)
        cap = ast.If(
            test=ast.Compare(left=ast.Name(id=counter, ctx=ast.Load()), ops=[ast.Gt()],
                             comparators=[ast.Constant(value=MAX_WHILE_ITERATIONS)]),
            body=[ast.Raise(exc=ast.Call(
                func=ast.Name(id="RuntimeError", ctx=ast.Load()),
                args=[ast.Constant(value=f"{fname}() ran more than {MAX_WHILE_ITERATIONS} "
                                         "iterations; check its condition")],
                keywords=[]), cause=None)],
            orelse=[])
        loop_body: list[ast.stmt] = [
            _assign(counter, ast.BinOp(left=ast.Name(id=counter, ctx=ast.Load()), op=ast.Add(),
                                       right=ast.Constant(value=1))),
            cap, *stmts, *_accumulate(kind, elt), *advance()]
        body: list[ast.stmt] = []
        if kind == "sum":
            body.append(_assign(_ACC, ast.Constant(value=0)))
        body += [_assign(var, init), _assign(counter, ast.Constant(value=0)),
                 ast.While(test=cond, body=loop_body, orelse=[]),
                 ast.Return(value=_final(kind))]
        args: list[ast.expr] = [ast.Name(id=p, ctx=ast.Load()) for p in params]
        return self._add_helper(self.fresh(f"{kind}_while"), params, body, call, args)

    def _add_helper(self, name: str, params: list[str], body: list[ast.stmt],
                    where: ast.AST, args: list[ast.expr]) -> ast.Call:
        helper = ast.FunctionDef(
            name=name,
            args=ast.arguments(posonlyargs=[], args=[ast.arg(arg=p) for p in params],
                               vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None,
                               defaults=[]),
            body=body, decorator_list=[], returns=None, type_comment=None)
        _locate(helper, where)
        # The helper's own reductions and if_else calls are lowered the same way.
        self.lower(helper, _local_names(helper))
        self.helpers.append(helper)
        result = ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=args, keywords=[])
        return ast.copy_location(result, where)

    # -- loop-control intrinsics -------------------------------------------------------

    def contains_control(self, node: ast.AST, local: set[str]) -> bool:
        if isinstance(node, _NESTED_SCOPES):
            return False
        name = self.intrinsic_name(node, local)
        if name in CONTROL_INTRINSICS:
            return True
        return any(self.contains_control(child, local) for child in ast.iter_child_nodes(node))

    def linearize(self, node: ast.expr, local: set[str],
                  actions: dict[str, _Action]) -> tuple[list[ast.stmt], ast.expr]:
        """Hoist the loop-control intrinsics out of ``node``: (statements, expression)."""
        if not self.contains_control(node, local):
            return [], node
        name = self.intrinsic_name(node, local)
        if name in CONTROL_INTRINSICS:
            return self._linearize_control(name, node, local, actions)  # type: ignore[arg-type]
        if isinstance(node, ast.IfExp):
            s_test, test = self.linearize(node.test, local, actions)
            s_body, body = self.linearize(node.body, local, actions)
            s_else, orelse = self.linearize(node.orelse, local, actions)
            tmp = self.fresh("t")
            branch = ast.If(test=test, body=[*s_body, _assign(tmp, body)],
                            orelse=[*s_else, _assign(tmp, orelse)])
            return [*s_test, _locate(branch, node)], _load(tmp, node)
        if isinstance(node, ast.BoolOp):
            return self._linearize_boolop(node, local, actions)
        return self._linearize_children(node, local, actions)

    def _linearize_control(self, name: str, node: ast.Call, local: set[str],
                           actions: dict[str, _Action]) -> tuple[list[ast.stmt], ast.expr]:
        action, kind = CONTROL_INTRINSICS[name]
        arity = 1 if kind == "nan" else 2
        if len(node.args) != arity or node.keywords:
            shape = "(value)" if arity == 1 else "(cond, value)"
            raise self.error(node, f"{name}() takes {arity} positional argument"
                                   f"{'s' if arity > 1 else ''} {shape}")
        stop = actions[action]
        if kind == "nan":
            stmts, value = self.linearize(node.args[0], local, actions)
            tmp = self.fresh("t")
            is_nan = ast.Compare(left=_load(tmp, node), ops=[ast.NotEq()],
                                 comparators=[_load(tmp, node)])
            stmts += [_assign(tmp, value), _locate(ast.If(test=is_nan, body=stop(), orelse=[]),
                                                   node)]
            return stmts, _load(tmp, node)
        s_cond, cond = self.linearize(node.args[0], local, actions)
        if kind == "unless":
            cond = ast.UnaryOp(op=ast.Not(), operand=cond)
        guard = _locate(ast.If(test=cond, body=stop(), orelse=[]), node)
        s_value, value = self.linearize(node.args[1], local, actions)
        return [*s_cond, guard, *s_value], value

    def _linearize_boolop(self, node: ast.BoolOp, local: set[str],
                          actions: dict[str, _Action]) -> tuple[list[ast.stmt], ast.expr]:
        # ``a and b and c``: tmp = a; if tmp: (tmp = b; if tmp: tmp = c), keeping Python's
        # operand-returning semantics and short-circuit.
        tmp = self.fresh("t")
        s_first, first = self.linearize(node.values[0], local, actions)
        nested: list[ast.stmt] = []
        for value in reversed(node.values[1:]):
            s_val, val = self.linearize(value, local, actions)
            block = [*s_val, _assign(tmp, val), *nested]
            test: ast.expr = _load(tmp, node)
            if isinstance(node.op, ast.Or):
                test = ast.UnaryOp(op=ast.Not(), operand=test)
            nested = [_locate(ast.If(test=test, body=block, orelse=[]), node)]
        return [*s_first, _assign(tmp, first), *nested], _load(tmp, node)

    def _linearize_children(self, node: ast.expr, local: set[str],
                            actions: dict[str, _Action]) -> tuple[list[ast.stmt], ast.expr]:
        slots: list[tuple[Callable[[ast.expr], None], ast.expr]] = []
        for field, value in ast.iter_fields(node):
            if isinstance(value, ast.expr):
                slots.append((_setter(node, field), value))
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, ast.expr):
                        slots.append((_item_setter(value, i), item))
                    elif isinstance(item, ast.keyword):
                        slots.append((_setter(item, "value"), item.value))
        lowered = [self.linearize(child, local, actions) for _, child in slots]
        last = max((i for i, (stmts, _) in enumerate(lowered) if stmts), default=-1)
        out: list[ast.stmt] = []
        for i, ((setter, _), (stmts, expr)) in enumerate(zip(slots, lowered)):
            out += stmts
            if i < last and not isinstance(expr, (ast.Name, ast.Constant)):
                # Evaluated before a later sibling's hoisted statements: bind it first.
                tmp = self.fresh("t")
                out.append(_assign(tmp, expr))
                expr = _load(tmp, expr)
            setter(expr)
        return out, node


class _IfElse(ast.NodeTransformer):
    """``if_else(c, a, b)`` -> ``a if c else b``."""

    def __init__(self, lowerer: _Lowerer, local: set[str]) -> None:
        self.lowerer = lowerer
        self.local = local

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if self.lowerer.intrinsic_name(node, self.local) == "if_else":
            if len(node.args) != 3 or node.keywords:
                raise self.lowerer.error(node, "if_else() takes 3 positional arguments "
                                               "(cond, when_true, when_false)")
            cond, when_true, when_false = node.args
            return ast.copy_location(ast.IfExp(test=cond, body=when_true, orelse=when_false),
                                     node)
        return node


class _Lifter(ast.NodeTransformer):
    """Replaces reductions by calls to lifted helpers (top-down; helpers lower themselves)."""

    def __init__(self, lowerer: _Lowerer, local: set[str]) -> None:
        self.lowerer = lowerer
        self.local = local
        self._top = True

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        if self._top:
            self._top = False
            self.generic_visit(node)
            return node
        return self._visit_scope(node, _local_names(node))

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        return self._visit_scope(node, {a.arg for a in _all_args(node.args)})

    def _visit_scope(self, node: ast.AST, names: set[str]) -> ast.AST:
        inner = _Lifter(self.lowerer, self.local | names)
        inner._top = False
        inner.generic_visit(node)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        func = node.func
        if isinstance(func, ast.Name) and func.id not in self.local:
            name = func.id
            if name in WHILE_REDUCTIONS and is_intrinsic(name, self.lowerer.namespace):
                return self.lowerer.lift_while(WHILE_REDUCTIONS[name], node, self.local)
            if (name in ("sum", "any", "all") and node.args
                    and isinstance(node.args[0], ast.GeneratorExp)
                    and is_builtin_reduction(name, self.lowerer.namespace)):
                start = self._start(name, node)
                if start is not _NOT_SUPPORTED:
                    if start is not None:
                        start = self.visit(start)
                    return self.lowerer.lift_generator(name, node.args[0], start, node,
                                                       self.local)
        self.generic_visit(node)
        return node

    @staticmethod
    def _start(name: str, node: ast.Call) -> Any:
        extra = node.args[1:]
        keywords = {k.arg: k.value for k in node.keywords}
        if name != "sum":
            return None if not extra and not keywords else _NOT_SUPPORTED
        if len(extra) == 1 and not keywords:
            return extra[0]
        if not extra and set(keywords) <= {"start"}:
            return keywords.get("start")
        return _NOT_SUPPORTED


_NOT_SUPPORTED = object()


# -- small AST helpers -----------------------------------------------------------------


def _reduction_actions(kind: str,
                       before_continue: _Action | None = None) -> dict[str, _Action]:
    """What break/continue do in a lifted helper: return the result so far, or skip."""
    def stop() -> list[ast.stmt]:
        return [ast.Return(value=_final(kind))]

    def skip() -> list[ast.stmt]:
        return [*(before_continue() if before_continue else []), ast.Continue()]

    return {"break": stop, "continue": skip}


def _final(kind: str) -> ast.expr:
    if kind == "sum":
        return ast.Name(id=_ACC, ctx=ast.Load())
    # any: nothing true seen so far -> False; all: nothing false seen so far -> True.
    return ast.Constant(value=(kind == "all"))


def _accumulate(kind: str, elt: ast.expr) -> list[ast.stmt]:
    if kind == "sum":
        return [_assign(_ACC, ast.BinOp(left=ast.Name(id=_ACC, ctx=ast.Load()), op=ast.Add(),
                                        right=elt))]
    test = elt if kind == "any" else ast.UnaryOp(op=ast.Not(), operand=elt)
    return [ast.If(test=test, body=[ast.Return(value=ast.Constant(value=(kind == "any")))],
                   orelse=[])]


def _assign(name: str, value: ast.expr) -> ast.Assign:
    node = ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())], value=value)
    return ast.copy_location(node, value) if hasattr(value, "lineno") else node


def _load(name: str, where: ast.AST) -> ast.Name:
    return ast.copy_location(ast.Name(id=name, ctx=ast.Load()), where)


def _locate(node: ast.AST, where: ast.AST) -> Any:
    """Give ``node`` and its location-less descendants the position of ``where``."""
    for child in ast.walk(node):
        if "lineno" in child._attributes and not hasattr(child, "lineno"):
            ast.copy_location(child, where)
    ast.copy_location(node, where)
    return node


def _setter(obj: ast.AST, field: str) -> Callable[[ast.expr], None]:
    return lambda value: setattr(obj, field, value)


def _item_setter(seq: list[Any], index: int) -> Callable[[ast.expr], None]:
    def set_item(value: ast.expr) -> None:
        seq[index] = value
    return set_item


def _all_args(args: ast.arguments) -> list[ast.arg]:
    out = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    out += [a for a in (args.vararg, args.kwarg) if a is not None]
    return out


def _local_names(fdef: ast.FunctionDef) -> set[str]:
    """Names bound in ``fdef``'s own scope: parameters, assignments, imports, defs."""
    names = {a.arg for a in _all_args(fdef.args)}
    stack: list[ast.AST] = list(fdef.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, _NESTED_SCOPES):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return names


def _loaded_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
