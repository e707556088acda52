"""The names an offloaded function may use without importing them.

Internal module, not part of the public API; ``iris.jit`` re-exports the stubs so that
linters and plain-Python readers can resolve the names.

Three groups:

- *syntax intrinsics* (``if_else``, ``sum_while``/``any_while``/``all_while`` and the
  loop-control family ``break_if``...): the rewriter (``_rewrite``) replaces every call to
  them with ordinary Python before numba sees the code, so they never run as functions.
  The stubs below exist for imports; ``if_else`` also works when called directly, the
  others raise a ``RuntimeError`` saying where they are allowed;
- *math names* (``sin``, ``cos``, ..., ``pi``, ``e``, ``math``): injected into the
  function's namespace when the module does not define them;
- ``prange``: ``range`` in Python, swapped for ``numba.prange`` when compiling.
"""

from __future__ import annotations

import builtins
import math
from typing import Any, TypeVar

__all__ = [
    "CONTROL_INTRINSICS",
    "MATH_NAMES",
    "WHILE_REDUCTIONS",
    "all_while",
    "any_while",
    "break_if",
    "break_on_nan",
    "break_unless",
    "break_when",
    "continue_if",
    "continue_on_nan",
    "continue_unless",
    "continue_when",
    "if_else",
    "injected_names",
    "is_builtin_reduction",
    "is_intrinsic",
    "prange",
    "sum_while",
]

T = TypeVar("T")

#: Loop-control intrinsics: name -> (action, condition kind).
#: action is "break" or "continue"; kind is "if" (act when cond is true), "unless" (act
#: when it is false) or "nan" (one argument; act when the value is NaN).
CONTROL_INTRINSICS: dict[str, tuple[str, str]] = {
    "break_if": ("break", "if"),
    "break_when": ("break", "if"),
    "break_unless": ("break", "unless"),
    "break_on_nan": ("break", "nan"),
    "continue_if": ("continue", "if"),
    "continue_when": ("continue", "if"),
    "continue_unless": ("continue", "unless"),
    "continue_on_nan": ("continue", "nan"),
}
# The original runtime also accepted ``loop_``-prefixed aliases.
CONTROL_INTRINSICS.update({f"loop_{k}": v for k, v in list(CONTROL_INTRINSICS.items())})

#: While reductions: name -> the reduction they perform.
WHILE_REDUCTIONS: dict[str, str] = {"sum_while": "sum", "any_while": "any", "all_while": "all"}

#: Math functions and constants usable by bare name (``sin(x)``, ``pi``).
MATH_NAMES: dict[str, Any] = {
    name: getattr(math, name)
    for name in ("sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh",
                 "tanh", "exp", "log", "log10", "log2", "sqrt", "floor", "ceil", "fabs",
                 "hypot", "isnan", "isinf", "isfinite", "pi", "e", "inf", "nan", "tau")
}


def if_else(cond: object, when_true: T, when_false: T) -> T:
    """``when_true if cond else when_false``, as a function.

    Inside an offloaded function the call is rewritten into a conditional expression, so
    only the chosen branch is evaluated; called directly, both arguments are evaluated.

    Example:
        >>> if_else(3 > 2, "yes", "no")
        'yes'
    """
    return when_true if cond else when_false


def _only_in_kernel(name: str, where: str) -> Any:
    def stub(*args: object) -> Any:
        raise RuntimeError(
            f"{name}() is an @iris.offload intrinsic and only works {where} inside an "
            f"offloaded function; it was called directly")

    stub.__name__ = stub.__qualname__ = name
    stub.__doc__ = (f"Intrinsic of offloaded functions, valid only {where}.\n\n"
                    "See ``docs/offload.md`` for its semantics; calling it directly raises "
                    "``RuntimeError``.")
    return stub


_GEN = "in the element expression of a sum/any/all generator or a *_while body"
break_if = _only_in_kernel("break_if", _GEN)
break_when = _only_in_kernel("break_when", _GEN)
break_unless = _only_in_kernel("break_unless", _GEN)
break_on_nan = _only_in_kernel("break_on_nan", _GEN)
continue_if = _only_in_kernel("continue_if", _GEN)
continue_when = _only_in_kernel("continue_when", _GEN)
continue_unless = _only_in_kernel("continue_unless", _GEN)
continue_on_nan = _only_in_kernel("continue_on_nan", _GEN)
_WHILE = "as an expression"
sum_while = _only_in_kernel("sum_while", _WHILE)
any_while = _only_in_kernel("any_while", _WHILE)
all_while = _only_in_kernel("all_while", _WHILE)

#: ``range`` for plain Python; the compiler swaps it for ``numba.prange``.
prange = range

_STUBS: dict[str, Any] = {
    "if_else": if_else, "sum_while": sum_while, "any_while": any_while,
    "all_while": all_while, "break_if": break_if, "break_when": break_when,
    "break_unless": break_unless, "break_on_nan": break_on_nan,
    "continue_if": continue_if, "continue_when": continue_when,
    "continue_unless": continue_unless, "continue_on_nan": continue_on_nan,
}


def is_intrinsic(name: str, namespace: dict[str, Any]) -> bool:
    """Whether ``name`` means the intrinsic in a function whose globals are ``namespace``.

    It does when the name is an intrinsic's and the module leaves it unbound or binds it
    to the stub exported by ``iris.jit``; a module's own ``sum_while`` wins.
    """
    if name not in _STUBS and name not in CONTROL_INTRINSICS:
        return False
    return name not in namespace or namespace[name] is _STUBS.get(name)


def is_builtin_reduction(name: str, namespace: dict[str, Any]) -> bool:
    """Whether ``name`` is the builtin ``sum``/``any``/``all`` (not shadowed by a global)."""
    if name in namespace:
        return namespace[name] is getattr(builtins, name)
    return True


def injected_names(namespace: dict[str, Any]) -> dict[str, Any]:
    """Names to add to a kernel's namespace: math names and ``math`` the module lacks."""
    extra: dict[str, Any] = {}
    for name, value in MATH_NAMES.items():
        if name not in namespace and not hasattr(builtins, name):
            extra[name] = value
    if "math" not in namespace:
        extra["math"] = math
    return extra
