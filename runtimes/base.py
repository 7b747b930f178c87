"""The one runtime contract: `infer(batch) -> (simcc_x, simcc_y)` on numpy arrays, and a lazy loader table."""
from __future__ import annotations

import importlib
from typing import Protocol, runtime_checkable

import numpy as np

from dwpose_edge.errors import InputError, ModelFileError, RuntimeUnavailableError
from dwpose_edge.runtimes import precisions


@runtime_checkable
class Runtime(Protocol):
    """A loaded pose model on one backend. `batch` is (N,3,H,W) float32 normalized RGB.

    `infer` returns arrays the caller owns (no buffer reused by a later call): the Estimator hands them on
    without a copy (tests/test_concurrency.py keeps earlier calls' logits and compares them).
    """

    name: str
    input_size: tuple[int, int]  # (W, H)

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


# runtime name -> (module, class, the backend package it imports, pip extra that installs it); names and
# precisions: runtimes/precisions.py
RUNTIMES: dict[str, tuple[str, str, str, str]] = {
    "torch": ("dwpose_edge.runtimes.torch_runtime", "TorchRuntime", "torch", "dwpose-edge[torch]"),
    "onnxruntime": ("dwpose_edge.runtimes.onnxruntime_runtime", "OnnxRuntime", "onnxruntime", "dwpose-edge"),
    "openvino": ("dwpose_edge.runtimes.openvino_runtime", "OpenVinoRuntime", "openvino", "dwpose-edge[openvino]"),
    "ncnn": ("dwpose_edge.runtimes.ncnn_runtime", "NcnnRuntime", "ncnn", "dwpose-edge[ncnn]"),
    "litert": ("dwpose_edge.runtimes.litert_runtime", "LiteRtRuntime", "ai_edge_litert", "dwpose-edge[litert]"),
}
assert tuple(RUNTIMES) == precisions.RUNTIMES

# exported-file runtimes: the files (manifest roles) they take, positionally, and the keyword arguments they take
FILE_ROLES: dict[str, tuple[str, ...]] = {"onnxruntime": ("model",), "openvino": ("xml",), "ncnn": ("param", "bin"),
                                         "litert": ("tflite",)}
# None: no device
DEFAULT_DEVICE: dict[str, str | None] = {"onnxruntime": "cpu", "openvino": "CPU", "ncnn": None, "litert": None}


def require(module: str, extra: str) -> object:
    """Import an optional package or raise RuntimeUnavailableError naming the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = {"[export]": "exporting", "[train]": "training"}.get(extra[extra.find("["):], "this runtime")
        raise RuntimeUnavailableError(
            f"the '{module}' package is needed for {what} but cannot be imported ({exc}); "
            f"install it with: pip install '{extra}'") from exc


def runtime_class(name: str) -> type:
    """Return the class implementing runtime `name`, imported on first use (the backends are optional):
    RuntimeUnavailableError naming the pip extra when its package is not installed."""
    if name not in RUNTIMES:
        raise InputError(f"unknown runtime {name!r}; choose one of {sorted(RUNTIMES)}")
    module, cls, package, extra = RUNTIMES[name]
    require(package, extra)
    return getattr(importlib.import_module(module), cls)


def check_batch(batch: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """Validate a (N,3,H,W) float32 batch against the model's input size; returns it C-contiguous."""
    if not isinstance(batch, np.ndarray) or batch.ndim != 4 or batch.shape[1] != 3:
        shape = getattr(batch, "shape", None)
        raise InputError(f"batch must be a float32 array (N,3,H,W), got shape {shape}")
    w, h = input_size
    if batch.shape[2:] != (h, w):
        raise InputError(f"batch crops are {batch.shape[3]}x{batch.shape[2]} (WxH) but the model takes {w}x{h}")
    if batch.shape[0] == 0:
        raise InputError("batch is empty (N=0)")
    return np.ascontiguousarray(batch, dtype=np.float32)


def open_runtime(runtime: str, files: dict, *, precision: str = "fp32", device: str | None = None,
                 threads: int | None = None, input_size: tuple[int, int] | None = None) -> Runtime:
    """Open exported model files (role -> path, as in a manifest artifact) on `runtime`."""
    cls = runtime_class(runtime)
    if runtime not in FILE_ROLES:
        raise InputError(f"runtime {runtime!r} does not load exported files")
    precisions.support(runtime, precision, device)
    precisions.check_cpu_feature(runtime, precision)
    missing = [role for role in FILE_ROLES[runtime] if role not in files]
    if missing:
        raise ModelFileError(f"{runtime} needs the files {list(FILE_ROLES[runtime])} but got {sorted(files)}: the "
                             "manifest or file table is incomplete; re-export with dwpose-edge export")
    kwargs = {"threads": threads, "input_size": input_size, "precision": precision}
    if DEFAULT_DEVICE[runtime] is not None:
        kwargs["device"] = device or DEFAULT_DEVICE[runtime]
    return cls(*(files[role] for role in FILE_ROLES[runtime]), **kwargs)
