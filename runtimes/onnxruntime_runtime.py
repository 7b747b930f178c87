"""ONNX Runtime: CPU EP by default; CUDA / TensorRT EPs when asked, with an error instead of a silent CPU fallback."""
from __future__ import annotations

import os

import numpy as np

from dwpose_edge.errors import InputError, ModelFileError, RuntimeUnavailableError
from dwpose_edge.onnx_file import check_onnx_file, ensure_checked
from dwpose_edge.runtimes.base import check_batch, require
from dwpose_edge.runtimes.io_names import input_size_from_shape, order_outputs

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class OnnxRuntime:
    """Runs a pose ONNX file; names and shapes come from the file. Thread-safe (ORT sessions are)."""

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike, device: str = "cpu", threads: int | None = None,
                 input_size: tuple[int, int] | None = None, precision: str = "fp32") -> None:
        ort = require("onnxruntime", "dwpose-edge")

        ensure_checked(path)
        device = device.lower()
        if device not in PROVIDERS:
            raise InputError(f"onnxruntime device must be one of {sorted(PROVIDERS)}, got {device!r}")
        wanted = PROVIDERS[device][0]
        if wanted not in ort.get_available_providers():
            raise RuntimeUnavailableError(
                f"{wanted} is not available in this onnxruntime build ({ort.get_available_providers()}); "
                "install onnxruntime-gpu with matching CUDA/TensorRT, or use device='cpu'")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(os.fspath(path), sess_options=opts, providers=PROVIDERS[device])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/NotImplemented types
            check_onnx_file(path)  # a file vouched for by its hash may still be bad: name what is wrong with it
            raise ModelFileError(f"onnxruntime cannot load {path}: {_first_line(exc)}; the file uses operators or "
                                 "types this onnxruntime lacks, or is not a pose model: re-export it") from exc
        if self.session.get_providers()[0] != wanted:
            raise RuntimeUnavailableError(
                f"onnxruntime fell back to {self.session.get_providers()[0]} although {wanted} was asked for "
                "(missing CUDA/cuDNN/TensorRT libraries?); refusing to run silently on another device")
        self.device, self.precision, self.path = device, precision, os.fspath(path)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = [d if isinstance(d, int) else None for d in inp.shape]
        self.input_size = input_size_from_shape(shape, self.path, input_size)
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        outs = self.session.get_outputs()
        self.output_names = [o.name for o in outs]
        ix, iy = order_outputs(self.output_names, [o.shape[-1] if isinstance(o.shape[-1], int) else None
                                                   for o in outs], self.input_size)
        self._order = (self.output_names[ix], self.output_names[iy])

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = check_batch(batch, self.input_size)
        if self.fixed_batch and len(batch) != self.fixed_batch:
            parts = [self.infer(batch[i:i + self.fixed_batch]) for i in range(0, len(batch), self.fixed_batch)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        try:
            sx, sy = self.session.run(list(self._order), {self.input_name: batch})
        except Exception as exc:
            raise ModelFileError(f"onnxruntime inference of {self.path} failed: {_first_line(exc)} "
                                 "(a model whose input is not float32 NCHW?)") from exc
        return sx, sy


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
