"""iris.jit: numba-compiled offload kernels, in-process or on the cluster's workers.

``@iris.offload`` (this package's :func:`offload`) turns a numeric Python function into a
kernel compiled with numba on its first call::

    import iris

    @iris.offload                      # strategy="jit": compiled in this process
    def norm(x, y, z):
        return sqrt(x * x + y * y + z * z)

    @iris.offload(strategy="actor")    # compiled and run on the cluster's workers
    def count_pos(a):
        return sum(1 for v in a if v > 0)

Inside an offloaded function these work without imports and compile to native code:
arithmetic, comparisons and chains, ``a if c else b``, ``if_else(c, a, b)``,
``sum/any/all(<expr> for v in range(...)/array [if pred])``, ``sum_while``/``any_while``/
``all_while``, the loop-control intrinsics (``break_if``, ``continue_if``, ``*_when``,
``*_unless``, ``break_on_nan``, ``continue_on_nan``), math functions by bare name or
``math.*``, ``pi`` and ``e``, and ordinary loops over numpy arrays.

How: the function's source is rewritten (``_lower``) into plain Python that numba compiles:
``if_else`` becomes a conditional expression, every ``sum/any/all`` over a generator and
every ``*_while`` becomes a lifted helper function with an explicit loop, and loop-control
intrinsics become ``if ...: continue``/``return``. The same rewritten code runs as plain
Python when numba cannot compile it (the *fallback*), so results agree.

Modules (all internal but this one)::

    _decorator   offload()                         _jitfunc  JitFunction (strategy="jit")
    _actor       ActorFunction (strategy="actor")  _base     OffloadFunction, statistics
    _numba       lazy numba import, kernel build,  _rewrite  source -> rewritten code
                 compile guard, fallback signal    _lower    intrinsics -> plain Python
    _types       argument checks, return_type      _options  decorator options
    _intrinsics  intrinsic names and stubs         _log      IRIS_JIT_LOG, set_jit_logging

``import iris.jit`` does not import numba; the first call of an offloaded function does.
"""

from __future__ import annotations

from iris.jit._actor import ActorFunction
from iris.jit._base import OffloadFunction, OffloadStatistics
from iris.jit._decorator import offload
from iris.jit._intrinsics import (
    all_while,
    any_while,
    break_if,
    break_on_nan,
    break_unless,
    break_when,
    continue_if,
    continue_on_nan,
    continue_unless,
    continue_when,
    if_else,
    prange,
    sum_while,
)
from iris.jit._jitfunc import JitFunction
from iris.jit._log import get_jit_logging, set_jit_logging
from iris.jit._lower import MAX_WHILE_ITERATIONS
from iris.jit._types import SUPPORTED_TYPES

__all__ = [
    "MAX_WHILE_ITERATIONS",
    "SUPPORTED_TYPES",
    "ActorFunction",
    "JitFunction",
    "OffloadFunction",
    "OffloadStatistics",
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
    "get_jit_logging",
    "if_else",
    "offload",
    "prange",
    "set_jit_logging",
    "sum_while",
]
