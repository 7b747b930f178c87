"""fp16 ONNX for onnxruntime: weights stored in fp16 (half the file), computed in fp32 on every CPU.

Why not a whole-fp16 graph (onnxruntime's `convert_float_to_float16`): on x86 the CPU EP has no fp16 kernels for
most ops, inserts casts and ends up computing in fp32 anyway, but on ARMv8.2 cores (Cortex-A76/A78, Neoverse-N1:
Raspberry Pi 5, Jetson Orin) it runs fp16 kernels, and fp16 arithmetic moves this model's keypoints. Measured in
the ARM lane (qemu neoverse-n1, the embedded dwpose-t, crop px vs torch fp32): the whole-fp16 graph 89.5% within
1 px (max 192 px); with the head kept in fp32 still 97.7%, with only the head's 7x7 conv in fp16 92.9%; the
fp16 arithmetic of the backbone alone fails the 99% gate. With fp16 weights and fp32 compute the artifact agrees
on every core (tests/arm). onnxruntime folds each weight's Cast into an fp32 constant when the session starts.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dwpose_edge.errors import ExportError

MIN_ELEMENTS = 64  # scalars and small vectors (eps, clip bounds, scales) stay fp32: nothing to save, range to lose


def convert_onnx_fp16(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write `src` with every float32 weight of >= MIN_ELEMENTS stored as fp16 and cast back to fp32 where it is
    used; inputs, outputs and the computation stay fp32. ExportError when a weight does not fit fp16's range."""
    try:
        proto = onnx.load(os.fspath(src))
    except Exception as exc:
        raise ExportError(f"cannot read {src} for the fp16 conversion: {exc}") from exc
    graph = proto.graph
    casts, kept = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < MIN_ELEMENTS:
            kept.append(init)
            continue
        w = numpy_helper.to_array(init)
        half = w.astype(np.float16)
        if not np.isfinite(half[np.isfinite(w)]).all():
            raise ExportError(f"weight {init.name} of {src} exceeds fp16's range (max |w| {np.abs(w).max():.3g}); "
                              "export fp32 instead")
        stored = numpy_helper.from_array(half, f"{init.name}__fp16")
        kept.append(stored)
        casts.append(helper.make_node("Cast", [stored.name], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}__to_fp32"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the fp16 model of {src} does not check: {exc}") from exc
    dst = Path(dst)
    onnx.save(proto, os.fspath(dst))
    return dst
