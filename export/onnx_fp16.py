"""fp16 ONNX for onnxruntime: weights and activations in fp16, float32 input/outputs kept."""
from __future__ import annotations

import os
from pathlib import Path

import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16

from dwpose_edge.errors import ExportError


def convert_onnx_fp16(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Convert with onnxruntime's own float16 converter (`keep_io_types`, so callers still feed float32).

    On CPU EPs without fp16 kernels ORT inserts casts and runs slower than fp32; fp16 pays off on GPU EPs.
    """
    try:
        proto = convert_float_to_float16(onnx.load(os.fspath(src)), keep_io_types=True)
    except Exception as exc:
        raise ExportError(f"fp16 conversion of {src} failed: {exc}") from exc
    _toposort(proto.graph)
    onnx.checker.check_model(proto)
    dst = Path(dst)
    onnx.save(proto, os.fspath(dst))
    return dst


def _toposort(graph) -> None:
    """Reorder nodes so each comes after its producers (the converter appends its input casts at the end)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ExportError("fp16 graph has a cycle or a dangling input; cannot order it")
        for n in ready:
            available.update(n.output)
        ordered += ready
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)
