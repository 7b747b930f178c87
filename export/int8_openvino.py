"""OpenVINO INT8: NNCF post-training quantisation of the fp32 IR (`nncf.quantize`, preset MIXED).

MIXED = symmetric int8 weights (per channel), asymmetric activations, which suits the SiLU outputs
(bounded below by -0.28). The fp32 IR is converted from the same ONNX file as the other back ends, so
the sensitive ONNX nodes map to IR ops by name: a Conv becomes `<onnx name>/WithoutBiases` (+ an Add),
a MatMul keeps its name unless it produces a model output (then it takes the output's name, e.g.
`simcc_x`); the mapping also checks output tensor names. Those ops go into NNCF's ignored scope, and
with them the whole GAU / MLP block they sit in (`BLOCKS`): NNCF also puts quantizers on the block's
elementwise ops, which onnxruntime (Conv/MatMul only) and ncnn (no int8 elementwise) leave in fp32.

`scope` says which ops NNCF may quantize at all (`SCOPES`): 'all' (every Convolution/MatMul, NNCF's
default) or 'spatial' (dense convolutions with a kernel larger than 1x1 only: the 3x3 and 7x7 ones, whose
int8 kernels gain most over bf16 here, 1.3-1.8x; docs/int8/PROFILE.md). Measured on the AVX512-BF16/VNNI
CPU: 'spatial' is the more accurate with no layer kept in float (embedded dwpose-t 95.2% vs 92.4% of
held-out keypoints within 2 px) but the slower (1.21x bf16 vs 1.36x): 1x1 convolutions gain 1.34x in int8
too and every int8/bf16 boundary costs a reorder. On the trained test model, with the same 3 head blocks
kept in float to pass the gate, 'all' is the faster (2.54 vs 2.72 ms per crop, 1 thread), so it stays the
default.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from dwpose_edge.errors import ExportError
from dwpose_edge.runtimes.base import require

QUANT_TYPES = ("Convolution", "GroupConvolution", "MatMul")
# Blocks whose elementwise ops NNCF also quantizes (ScaleNorm divisions, the GAU's gating multiplies and
# residual add): when one of their MatMuls must stay fp32, the whole block does. Measured on the trained
# test dwpose-t: ignoring only the six sensitive head MatMuls left 93.6 % of held-out keypoints within
# 2 px; ignoring these blocks (+ cls_x/cls_y) gives 97.6 %.
BLOCKS = ("/head/gau/", "/head/mlp/")
SCOPES = ("all", "spatial")


def outside_scope(ov_model, scope: str) -> list[str]:
    """Friendly names of the Convolution/GroupConvolution/MatMul ops `scope` leaves unquantized."""
    if scope not in SCOPES:
        raise ExportError(f"unknown OpenVINO int8 scope {scope!r}; choose one of {list(SCOPES)}")
    if scope == "all":
        return []
    out = []
    for op in ov_model.get_ordered_ops():
        kind = op.get_type_name()
        spatial = kind == "Convolution" and any(d > 1 for d in op.input(1).get_partial_shape().to_shape()[2:])
        if kind in QUANT_TYPES and not spatial:
            out.append(op.get_friendly_name())
    return out


def ov_names_for(ov_model, onnx_nodes: dict[str, list[str]]) -> dict[str, str]:
    """ONNX node name -> IR op friendly name, for Convolution/GroupConvolution/MatMul ops.

    `onnx_nodes`: ONNX node name -> its output tensor names.
    """
    ops = [op for op in ov_model.get_ordered_ops() if op.get_type_name() in QUANT_TYPES]
    by_name = {op.get_friendly_name(): op for op in ops}
    consumers_out: dict[str, str] = {}
    for op in ops:
        names = set(op.output(0).get_names())
        for t in op.output(0).get_target_inputs():  # Conv + bias Add: the Add carries the ONNX tensor name
            node = t.get_node()
            if node.get_type_name() == "Add":
                names |= set(node.output(0).get_names())
        for n in names:
            consumers_out[n] = op.get_friendly_name()
    out = {}
    for onnx_name, outputs in onnx_nodes.items():
        for cand in (onnx_name, f"{onnx_name}/WithoutBiases"):
            if cand in by_name:
                out[onnx_name] = cand
                break
        else:
            for t in outputs:
                if t in consumers_out:
                    out[onnx_name] = consumers_out[t]
                    break
    return out


def quantize_openvino(fp32_onnx: str | os.PathLike, xml_out: str | os.PathLike, crops: np.ndarray,
                      fp_nodes: Iterable[str] = (), onnx_outputs: dict[str, list[str]] | None = None,
                      preset: str = "MIXED", fast_bias_correction: bool = True, scope: str = "all") -> dict:
    """Quantize the IR of `fp32_onnx` with NNCF on `crops`, write `xml_out` (+ .bin, fp32 where not int8).
    `fp_nodes`: ONNX nodes kept in floating point; `scope`: which op kinds may be quantized (`SCOPES`)."""
    os.environ.setdefault("CI", "true")  # NNCF/OpenVINO telemetry off in non-interactive runs
    ov = require("openvino", "dwpose-edge[openvino]")
    nncf = require("nncf", "dwpose-edge[export]")
    xml_out = Path(xml_out)
    model = ov.convert_model(os.fspath(fp32_onnx))
    fp_nodes = sorted(set(fp_nodes))
    mapping = ov_names_for(model, onnx_outputs or {n: [] for n in fp_nodes}) if fp_nodes else {}
    missing = [n for n in fp_nodes if n not in mapping]
    if missing:
        raise ExportError(f"cannot find the OpenVINO ops of ONNX nodes {missing[:5]} to keep them in fp32")
    ignored = sorted(mapping[n] for n in fp_nodes)
    blocks = sorted({b for n in fp_nodes for b in BLOCKS if n.startswith(b)})
    patterns = [re.escape(b) + ".*" for b in blocks]
    unquantized = sorted(set(outside_scope(model, scope)) - set(ignored))
    names = ignored + unquantized
    ignored_scope = nncf.IgnoredScope(names=names, patterns=patterns, validate=False) if names else None
    dataset = nncf.Dataset([np.ascontiguousarray(crops[i:i + 1], np.float32) for i in range(len(crops))])
    try:
        quantized = nncf.quantize(model, dataset, preset=getattr(nncf.QuantizationPreset, preset),
                                  subset_size=len(crops), fast_bias_correction=fast_bias_correction,
                                  ignored_scope=ignored_scope)
    except Exception as exc:  # NNCF raises a variety of errors from its graph passes
        raise ExportError(f"NNCF quantisation failed: {type(exc).__name__}: {exc}") from exc
    xml_out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, os.fspath(xml_out), compress_to_fp16=False)
    n_fq = sum(1 for op in quantized.get_ordered_ops() if op.get_type_name() == "FakeQuantize")
    return {"method": "nncf.quantize", "preset": preset, "fast_bias_correction": fast_bias_correction,
            "scope": scope,
            "ignored_scope": {"names": ignored, "patterns": patterns, "outside_scope": len(unquantized)},
            "fake_quantize_ops": n_fq, "n_calib": int(len(crops)), "nncf": getattr(nncf, "__version__", "")}
