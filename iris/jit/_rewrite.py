"""From a Python function to the code the offload compiler runs: source, AST, code object.

Internal module, not part of the public API.

::

    py_func ──get_source──▶ FunctionSource (text, file, first line; picklable, so workers
                            │                on other machines rewrite without the file)
                            ▼
              rewrite(): parse ─▶ strip decorators ─▶ _lower.lower_function ─▶ compile
                            │
                            ▼
              RewrittenCode: a module code object defining the helpers, then the function,
                             with the line numbers and file name of the original

``_compile`` executes that code twice, in two namespaces built from the function's globals:
once to get the plain-Python version (the fallback) and once for numba.
"""

from __future__ import annotations
import __future__

import ast
import inspect
import textwrap
from dataclasses import dataclass
from types import CodeType, FunctionType
from typing import Any

from iris.jit._lower import lower_function

__all__ = ["FunctionSource", "RewriteUnavailable", "RewrittenCode", "get_source", "rewrite"]


class RewriteUnavailable(Exception):
    """The function's source cannot be had or parsed (internal; numba gets the original)."""


@dataclass(frozen=True, slots=True)
class FunctionSource:
    """The source text of a function definition (internal type).

    Attributes:
        text: the dedented source, from its first decorator line.
        filename: the file it came from (kept as the code's file name for tracebacks and
            numba's on-disk cache).
        firstlineno: the line of ``text``'s first line in ``filename``.
    """

    text: str
    filename: str
    firstlineno: int


@dataclass(frozen=True, slots=True)
class RewrittenCode:
    """A module code object defining ``helpers`` and then the function ``name`` (internal)."""

    code: CodeType
    name: str
    helpers: tuple[str, ...]


def get_source(py_func: FunctionType) -> FunctionSource | None:
    """The source of ``py_func``, or None for lambdas and functions without a source file."""
    if py_func.__name__ == "<lambda>":
        return None
    try:
        lines, firstlineno = inspect.getsourcelines(py_func)
    except (OSError, TypeError):
        return None
    return FunctionSource(textwrap.dedent("".join(lines)), py_func.__code__.co_filename,
                          max(firstlineno, 1))


def rewrite(py_func: FunctionType, source: FunctionSource,
            namespace: dict[str, Any]) -> RewrittenCode:
    """Parse ``source`` and lower its intrinsics.

    Args:
        py_func: the original function (for its name).
        source: its source.
        namespace: the globals it will run with, to tell intrinsics from user names.

    Raises:
        RewriteUnavailable: the source does not parse or holds no such ``def``.
        SyntaxError: an intrinsic is misused.
    """
    try:
        tree = ast.parse(source.text, filename=source.filename)
    except SyntaxError as exc:
        raise RewriteUnavailable(f"its source does not parse: {exc}") from None
    fdef = next((node for node in tree.body if isinstance(node, ast.FunctionDef)
                 and node.name == py_func.__name__), None)
    if fdef is None:
        raise RewriteUnavailable(f"no 'def {py_func.__name__}' in its source")
    fdef.decorator_list = []
    ast.increment_lineno(fdef, source.firstlineno - 1)
    helpers = lower_function(fdef, namespace, source.filename)
    module = ast.Module(body=[*helpers, fdef], type_ignores=[])
    ast.fix_missing_locations(module)
    # Postponed annotations: a hint naming a TYPE_CHECKING-only import must not fail here.
    code = compile(module, source.filename, "exec",
                   flags=__future__.annotations.compiler_flag, dont_inherit=True)
    return RewrittenCode(code, fdef.name, tuple(h.name for h in helpers))
