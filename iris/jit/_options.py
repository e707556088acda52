"""The options of ``@iris.offload``, validated once at decoration time.

Internal module, not part of the public API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iris.jit._types import make_result_converter

__all__ = ["STRATEGIES", "OffloadOptions"]

#: Where an offloaded function runs: in the caller's process, or on the cluster's workers.
STRATEGIES = ("jit", "actor")


@dataclass(frozen=True, slots=True)
class OffloadOptions:
    """Options of one offloaded function (internal type, not part of the public API).

    Attributes:
        strategy: ``"jit"`` (compile and run in the calling process) or ``"actor"`` (run on
            the cluster's worker processes, each compiling once).
        return_type: ``None`` (numba's own result), ``"float"``, ``"int"``, ``"bool"`` or a
            numpy dtype; the result is converted to it.
        parallel: compile with ``numba.njit(parallel=True)`` (use ``prange`` loops).
        cache: keep compiled code on disk (numba's cache) for later processes and workers.
        fastmath: compile with ``fastmath=True`` (reassociation; may change float results).
    """

    strategy: str = "jit"
    return_type: Any = None
    parallel: bool = False
    cache: bool = True
    fastmath: bool = False

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown offload strategy {self.strategy!r} "
                             f"(known strategies: {list(STRATEGIES)})")
        for name in ("parallel", "cache", "fastmath"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise TypeError(f"offload option {name}= takes True or False, not {value!r}")
        make_result_converter(self.return_type)  # raises ValueError if unsupported

    def njit_kwargs(self, helper: bool = False) -> dict[str, bool]:
        """Keyword arguments for ``numba.njit`` (helpers are never ``parallel``)."""
        return {"cache": self.cache, "parallel": self.parallel and not helper,
                "fastmath": self.fastmath}
