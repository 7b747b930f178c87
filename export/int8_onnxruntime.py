"""onnxruntime INT8: static QDQ quantisation (`onnxruntime.quantization.quantize_static`).

Weights int8 symmetric per output channel; activations per tensor with MinMax ranges over the
calibration crops. Only Conv and MatMul are quantized (`OP_TYPES`): ORT fuses DQ -> Conv -> Q into
QLinearConv / MatMulIntegerToFloat, and the fp32 SiLU/ScaleNorm ops between them stay exact. Nodes
named in `fp_nodes` (from the sensitivity ranking) are excluded and run in fp32.

Activation type and options, measured (`MEASURED`; re-measured by
`bench/benchmarks/test_bench_int8.py::test_onnxruntime_activation_types`): QUInt8 activations are both faster and at
least as accurate as QInt8 on this x86 CPU (AVX-512 VNNI runs u8s8), so QUInt8 is the default.
`quant_pre_process` helps a little (kept on); quantizing every op type ORT supports (Mul, Add, Concat,
Sigmoid, ...) is faster at batch 8 but loses accuracy (89 % within 2 px), so only Conv/MatMul.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import onnx

from dwpose_edge.errors import ExportError

OP_TYPES = ("Conv", "MatMul")
ACTIVATION_TYPES = ("QUInt8", "QInt8")
DEFAULT_ACTIVATION_TYPE = "QUInt8"
# Measured on the project's 2-core AMD EPYC (AVX-512 VNNI), 2 threads, the trained test dwpose-t
# (tests/int8_assets.py) with its 6 sensitive head layers in fp32; ms per crop at batch 1 / batch 8 and
# share of 24 held-out crops' keypoints within 2 px of fp32. fp32 onnxruntime: 4.05 / 3.65 ms.
MEASURED: dict = {
    "QUInt8": {"ms_b1": 2.84, "ms_b8": 2.60, "within_2px": 0.9749},
    "QInt8": {"ms_b1": 6.85, "ms_b8": 5.48, "within_2px": 0.9662},
    "QUInt8, no quant_pre_process": {"ms_b1": 3.01, "ms_b8": 2.69, "within_2px": 0.9749},
    "QUInt8, all op types": {"ms_b1": 2.92, "ms_b8": 2.32, "within_2px": 0.8944},
    "QUInt8, no fp32 layers": {"ms_b1": 2.79, "ms_b8": 2.55, "within_2px": 0.8803},
}


class _Reader:
    """CalibrationDataReader over an (N,3,H,W) array, `batch` crops at a time."""

    def __init__(self, input_name: str, crops: np.ndarray, batch: int = 8) -> None:
        self.input_name, self.crops, self.batch, self.i = input_name, crops, batch, 0

    def get_next(self):
        if self.i >= len(self.crops):
            return None
        b = np.ascontiguousarray(self.crops[self.i:self.i + self.batch], np.float32)
        self.i += self.batch
        return {self.input_name: b}

    def rewind(self) -> None:
        self.i = 0


def quantize_onnxruntime(fp32_onnx: str | os.PathLike, out_path: str | os.PathLike, crops: np.ndarray,
                         fp_nodes: Iterable[str] = (), activation_type: str = DEFAULT_ACTIVATION_TYPE,
                         op_types: Iterable[str] = OP_TYPES, preprocess: bool = True, batch: int = 8) -> dict:
    """Write a QDQ INT8 model to `out_path`; returns what was done (for the manifest)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if activation_type not in ACTIVATION_TYPES:
        raise ExportError(f"activation_type must be one of {ACTIVATION_TYPES}, got {activation_type!r}")
    out_path = Path(out_path)
    src = Path(fp32_onnx)
    fp_nodes = sorted(set(fp_nodes))
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".ort-int8-") as tmp:
        if preprocess:
            src = _preprocess(src, Path(tmp) / "pre.onnx")
        input_name = [i.name for i in onnx.load(str(src), load_external_data=False).graph.input][0]
        tmp_out = Path(tmp) / "int8.onnx"
        try:
            quantize_static(
                str(src), str(tmp_out), _Reader(input_name, crops, batch), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(op_types), per_channel=True, reduce_range=False,
                activation_type=getattr(QuantType, activation_type), weight_type=QuantType.QInt8,
                nodes_to_exclude=fp_nodes, calibrate_method=CalibrationMethod.MinMax,
                extra_options={"ActivationSymmetric": activation_type == "QInt8", "WeightSymmetric": True,
                               "CalibMaxIntermediateOutputs": intermediate_chunk(-(-len(crops) // batch))})
        except Exception as exc:  # ORT raises many types from its graph passes
            raise ExportError(f"onnxruntime static quantisation failed: {type(exc).__name__}: {exc}") from exc
        os.replace(tmp_out, out_path)
    return {"method": "onnxruntime.quantization.quantize_static", "format": "QDQ", "per_channel": True,
            "activation_type": activation_type, "weight_type": "QInt8", "calibrate_method": "MinMax",
            "op_types": list(op_types), "preprocess": bool(preprocess), "n_calib": int(len(crops))}


def intermediate_chunk(n_batches: int, most: int = 32) -> int:
    """How many calibration batches ORT keeps before reducing them (bounds its memory). Not a divisor of
    `n_batches`: onnxruntime 1.32's MinMax calibrater raises "No data is collected" when the last chunk
    ends exactly on the last batch (e.g. the default 256 crops in batches of 8)."""
    for m in range(min(most, max(n_batches, 1)), 1, -1):
        if n_batches % m:
            return m
    return n_batches + 1  # 1 or 2 batches: one chunk holds everything


def _preprocess(src: Path, dst: Path) -> Path:
    """`quant_pre_process` (symbolic shape inference + ORT basic optimisation), as ORT recommends."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
    except Exception:  # symbolic shape inference can fail on unusual graphs: ONNX shape inference only
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    return dst
