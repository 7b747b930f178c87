"""Read mmpose/mmengine `.pth` checkpoints with weights-only unpickling and a closed allow-list.

Three layouts are in users' hands, all read here without importing mmengine or running any
code the file names:

* a bare state dict, or ``{"meta", "state_dict"}`` (mmengine's `save_checkpoint`);
* OpenMMLab releases (mmpose 1.x ``tools/misc/publish_model.py``): ``meta``, ``state_dict``,
  ``param_schedulers``;
* Hugging Face ``yzd-v/DWPose`` files (mmengine training checkpoints after DWPose's
  ``pth_transfer.py``): the above plus ``message_hub`` (mmengine ``HistoryBuffer`` objects)
  and ``ema_state_dict`` (the raw, non-EMA distiller weights: ignored; ``state_dict`` holds
  the EMA student mmengine's EMAHook swapped in at save).

The globals such files name, beyond what `torch.load(weights_only=True)` accepts by default
(tensors, storages, ``collections.OrderedDict``, ``_codecs.encode``), are exactly:
``mmengine.logging.history_buffer.HistoryBuffer`` (read into `HistoryBufferStandIn`, plain
data), numpy's array and scalar reconstruction (``numpy.ndarray``, ``numpy.dtype``,
``numpy.core.multiarray._reconstruct`` / ``.scalar``; also under ``numpy._core`` for files
written with numpy 2) and, in files written by mmengine >= 0.8, ``builtins.getattr`` naming
one of HistoryBuffer's four statistics methods (read as its name by `_history_buffer_method`,
which refuses every other use). Everything else is refused before it can run.
"""
from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

try:
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct, scalar

from ..errors import WeightsError

HISTORY_BUFFER = "mmengine.logging.history_buffer.HistoryBuffer"
# HistoryBuffer.__getstate__ (mmengine >= 0.8) pickles its class-level statistics methods as
# getattr(HistoryBuffer, name); older mmengine, which wrote the Hugging Face files, did not.
HISTORY_BUFFER_METHODS = frozenset({"min", "max", "current", "mean"})


class HistoryBufferStandIn:
    """What an mmengine ``HistoryBuffer`` in a checkpoint's ``message_hub`` is read into.

    Holds the pickled attributes (``max_length``, ``_log_history``, ``_count_history`` and
    maybe ``statistics_methods``) as a read-only mapping in `state`; has no behaviour, and
    takes no constructor arguments, so a pickle cannot make it do anything.
    """

    __slots__ = ("_state",)

    def __setstate__(self, state: Any) -> None:
        # Called by the unpickler's BUILD: once, with the attribute dict HistoryBuffer pickled.
        if hasattr(self, "_state"):
            raise TypeError(f"{HISTORY_BUFFER} state set twice")
        if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
            state = state[0]  # (dict, slotstate) form of pickle's default BUILD state
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise TypeError(f"{HISTORY_BUFFER} state must be a dict of attributes, got {type(state).__name__}")
        object.__setattr__(self, "_state", MappingProxyType(dict(state)))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    @property
    def state(self) -> Mapping[str, Any]:
        return getattr(self, "_state", MappingProxyType({}))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({sorted(self.state)})"


def _history_buffer_method(owner: Any, name: Any) -> str:
    """Stand-in for ``builtins.getattr`` while loading: only ``getattr(HistoryBuffer, <statistic>)``.

    Returns the statistic's name (plain data); any other object or attribute is refused, so the
    allowed global cannot reach anything else.
    """
    if owner is HistoryBufferStandIn and isinstance(name, str) and name in HISTORY_BUFFER_METHODS:
        return name
    owner_name = HISTORY_BUFFER if owner is HistoryBufferStandIn else getattr(owner, "__name__", type(owner).__name__)
    raise TypeError(f"refused getattr({owner_name}, {name!r}): only {HISTORY_BUFFER}'s statistics "
                    f"methods {sorted(HISTORY_BUFFER_METHODS)} may be named")


def allowed_globals() -> list:
    """The safe_globals of `read_checkpoint`: (object, pickled name) pairs, nothing else."""
    # Files written under numpy 1 (every mmpose/DWPose release: mmpose pins numpy<2) name
    # numpy.core.multiarray.*, files written under numpy 2 name numpy._core.multiarray.*; torch
    # matches globals by name, so both spellings are listed.
    allowed: list = [(HistoryBufferStandIn, HISTORY_BUFFER), (_history_buffer_method, "builtins.getattr"),
                     (np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")]
    for mod in ("numpy.core", "numpy._core"):
        allowed += [(_reconstruct, f"{mod}.multiarray._reconstruct"), (scalar, f"{mod}.multiarray.scalar")]
    # numpy >= 1.25 makes each dtype an instance of its own class (numpy.dtypes.Float32DType...), and
    # the unpickler's BUILD only sets the state of allowed classes. Numeric kinds only: mmengine stores
    # float/int/uint8 arrays (dataset metainfo, log history); object arrays stay refused.
    for code in "?bBhHiIlLqQefdg":
        cls = type(np.dtype(code))
        if cls is not np.dtype:
            allowed.append((cls, f"{cls.__module__}.{cls.__qualname__}"))
    return list(dict.fromkeys(allowed))


_SAFE_GLOBALS_LOCK = threading.Lock()


def read_checkpoint(path: str | os.PathLike) -> Any:
    """Unpickle a `.pth` file weights-only with `allowed_globals`; every failure is a WeightsError.

    A refused global's error names it (e.g. ``Unsupported global: GLOBAL subprocess.call``).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"checkpoint not found: {path}")
    try:
        # safe_globals edits one process-wide list: a lock keeps a parallel load from seeing it half-restored
        with _SAFE_GLOBALS_LOCK, torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt / unsafe pickles
        raise WeightsError(
            f"cannot read checkpoint {path}: {type(exc).__name__}: {_load_error_summary(exc)}"
            " (is it a complete mmpose .pth file? re-download it; files needing arbitrary pickled"
            " objects are refused on purpose)") from exc


def _load_error_summary(exc: Exception) -> str:
    """The informative line of a torch.load error (e.g. 'Unsupported global: ...'), ANSI codes stripped."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in str(exc).splitlines()]
    lines = [ln for ln in lines if ln]
    for ln in lines:
        if "Unsupported global" in ln or "GLOBAL" in ln or "refused getattr" in ln:
            return ln[:300]
    return (lines[0] if lines else "")[:300]
