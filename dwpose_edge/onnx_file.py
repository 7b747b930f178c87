"""Checks of an ONNX model file before any runtime sees it (corrupt, wrong kind, NaN weights): runtimes and
detectors need them without the exporter."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from dwpose_edge.errors import ModelFileError


def check_onnx_file(path: str | os.PathLike, n_outputs: int = 2, contract: str | None = None) -> onnx.ModelProto:
    """Load and check an ONNX file before any runtime sees it; ModelFileError if corrupt or of the wrong kind
    (one input and `n_outputs` outputs: 2 for a SimCC pose model, 1 for a YOLOX detector; `contract` words
    the expectation in the error instead)."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not an ONNX file; for a folder written by `dwpose-edge export` "
                             "pass it as model_dir")
    if not path.is_file():
        raise ModelFileError(f"ONNX file not found: {path}")
    if path.stat().st_size == 0:
        raise ModelFileError(f"ONNX file is empty: {path}")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise ModelFileError(f"{path} is not a valid ONNX model (truncated or corrupt?): "
                             f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    inputs = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    if len(inputs) != 1 or len(proto.graph.output) != n_outputs:
        what = contract or ("a DWPose/RTMPose model has one input and two outputs (simcc_x, simcc_y)"
                            if n_outputs == 2 else f"expected one input and {n_outputs} output(s)")
        raise ModelFileError(f"{path} has {len(inputs)} inputs and {len(proto.graph.output)} outputs; {what}")
    bad = _non_finite_initializers(proto)
    if bad:
        raise ModelFileError(f"{path} has NaN/inf weights in {bad[:5]}: the file is corrupt; re-export or "
                             "re-download it")
    return proto


def _non_finite_initializers(proto) -> list[str]:
    """Names of floating-point initializers holding NaN or inf (external data is not loaded here)."""
    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}
    bad = []
    for init in proto.graph.initializer:
        if init.data_type in floats and init.data_location != TensorProto.EXTERNAL:
            values = numpy_helper.to_array(init)
            if not np.isfinite(values.astype(np.float32, copy=False)).all():
                bad.append(init.name)
    return bad


def onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata_props of an ONNX file (key -> value), without loading external data."""
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def is_onnx_path(weights: object) -> bool:
    """True when `weights` names an .onnx file (by its suffix; the file itself is checked on load)."""
    return isinstance(weights, (str, os.PathLike)) and os.fspath(weights).lower().endswith(".onnx")
