"""Per-layer INT8 sensitivity of a pose ONNX model, measured on calibration crops.

Each quantizable node (Conv, MatMul, Gemm) is quantized ALONE by a graph edit that simulates INT8
exactly as the runtimes do it: its activation inputs go through QuantizeLinear/DequantizeLinear
(uint8, asymmetric, min/max range over the calibration crops) and its weight is replaced by its
per-output-channel symmetric int8 rounding. The model then runs on a subset of the crops (onnxruntime
fp32) and the SimCC outputs are compared with the unmodified model: mean keypoint displacement in
input pixels, share of keypoints within 2 px, and relative logit error. Sorting by (mean px error,
logit error) gives the order in which layers are kept in fp32 until a quantized model meets the gate.

ONNX node names are the currency shared by all three INT8 back ends: onnxruntime excludes nodes by
name, OpenVINO's IR keeps them as op names (NNCF ignored scope), ncnn layers are matched to them by
weights (`int8_ncnn.map_layers_to_onnx`).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from dwpose_edge.export.validate import agreement, run_batched

QUANT_OPS = ("Conv", "MatMul", "Gemm")


@dataclass(frozen=True)
class LayerSensitivity:
    node: str
    op: str
    mean_px_error: float
    within_2px: float
    logit_rel_error: float

    def as_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _load(path):
    return onnx.load(os.fspath(path))


def _initializers(proto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}


def quant_nodes(proto) -> list:
    """The nodes an INT8 back end quantizes: Conv/MatMul/Gemm, in graph order."""
    return [n for n in proto.graph.node if n.op_type in QUANT_OPS]


def weight_matrices(proto) -> dict[str, np.ndarray]:
    """Node name -> its constant weight as (outputs, inputs): Conv W.reshape(O, -1), MatMul B.T, Gemm per transB."""
    inits = _initializers(proto)
    out = {}
    for n in quant_nodes(proto):
        if len(n.input) < 2 or n.input[1] not in inits:
            continue
        w = inits[n.input[1]].astype(np.float32)
        if n.op_type == "Conv":
            out[n.name] = w.reshape(w.shape[0], -1)
        elif n.op_type == "MatMul" and w.ndim == 2:
            out[n.name] = w.T
        elif n.op_type == "Gemm" and w.ndim == 2:
            trans_b = next((a.i for a in n.attribute if a.name == "transB"), 0)
            out[n.name] = w if trans_b else w.T
    return out


def activation_inputs(proto) -> dict[str, list[str]]:
    """Node name -> its non-constant inputs among the first two (what gets a QDQ pair)."""
    inits = set(_initializers(proto))
    return {n.name: [t for t in list(n.input)[:2] if t and t not in inits] for n in quant_nodes(proto)}


def collect_ranges(onnx_path: str | os.PathLike, tensors: list[str], crops: np.ndarray, threads: int | None = None,
                   batch: int = 8) -> dict[str, tuple[float, float]]:
    """min/max of named intermediate tensors over `crops` (one onnxruntime pass with extra outputs)."""
    proto = _load(onnx_path)
    known = {o.name for o in proto.graph.output}
    for t in tensors:
        if t not in known:
            proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    sess = _session(proto.SerializeToString(), threads)
    lo = dict.fromkeys(tensors, np.inf)
    hi = dict.fromkeys(tensors, -np.inf)
    name = sess.get_inputs()[0].name
    for i in range(0, len(crops), batch):
        outs = sess.run(tensors, {name: np.ascontiguousarray(crops[i:i + batch], np.float32)})
        for t, v in zip(tensors, outs):
            lo[t] = min(lo[t], float(v.min()))
            hi[t] = max(hi[t], float(v.max()))
    return {t: (lo[t], hi[t]) for t in tensors}


def _session(model_bytes: bytes, threads: int | None):
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


def _uint8_qparams(lo: float, hi: float) -> tuple[float, int]:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    return float(scale), int(np.clip(np.round(-lo / scale), 0, 255))


def fake_quant_weight(w: np.ndarray, op: str, trans_b: int = 0) -> np.ndarray:
    """Per-output-channel symmetric int8 rounding (Conv axis 0, MatMul axis 1, Gemm per transB)."""
    axis = 0 if op == "Conv" or (op == "Gemm" and trans_b) else w.ndim - 1
    red = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.abs(w).max(axis=red, keepdims=True)
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    return (np.clip(np.round(w / scale), -127, 127) * scale).astype(np.float32)


def simulated_model(proto, node_names: list[str], ranges: dict[str, tuple[float, float]]):
    """A copy of `proto` in which the named nodes compute as INT8 (QDQ activations, rounded weights)."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    inits = {t.name: t for t in model.graph.initializer}
    wanted = set(node_names)
    new_nodes, extra_inits = [], []
    for node in model.graph.node:
        if node.name in wanted:
            for idx, t in enumerate(list(node.input)[:2]):
                if not t:
                    continue
                if t in inits:
                    if idx != 1:
                        continue
                    trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
                    w = numpy_helper.to_array(inits[t])
                    name = f"{t}__fq_{node.name}"
                    extra_inits.append(numpy_helper.from_array(fake_quant_weight(w, node.op_type, trans_b), name))
                    node.input[idx] = name
                    continue
                scale, zp = _uint8_qparams(*ranges[t])
                tag = f"{t}__qdq_{node.name}"
                extra_inits += [numpy_helper.from_array(np.array(scale, np.float32), tag + "_s"),
                                numpy_helper.from_array(np.array(zp, np.uint8), tag + "_z")]
                new_nodes += [helper.make_node("QuantizeLinear", [t, tag + "_s", tag + "_z"], [tag + "_q"]),
                              helper.make_node("DequantizeLinear", [tag + "_q", tag + "_s", tag + "_z"], [tag])]
                node.input[idx] = tag
        new_nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    model.graph.initializer.extend(extra_inits)
    return model


def layer_sensitivity(onnx_path: str | os.PathLike, calib_crops: np.ndarray, probe_crops: np.ndarray,
                      threads: int | None = None, log: Callable[[str], None] | None = None
                      ) -> list[LayerSensitivity]:
    """Quantize each Conv/MatMul/Gemm alone, run `probe_crops`, rank by damage (most harmful first).

    Activation ranges come from all `calib_crops`; the comparison uses `probe_crops` (a subset is enough).
    """
    proto = _load(onnx_path)
    acts = activation_inputs(proto)
    tensors = sorted({t for ts in acts.values() for t in ts})
    ranges = collect_ranges(onnx_path, tensors, calib_crops, threads)
    base = _session(proto.SerializeToString(), threads)
    name = base.get_inputs()[0].name
    outs = [o.name for o in base.get_outputs()]

    def infer_with(sess):
        return lambda b: tuple(sess.run(outs, {name: b}))

    ref = run_batched(infer_with(base), probe_crops)
    ref_norm = float(np.sqrt(np.mean(ref[0] ** 2) + np.mean(ref[1] ** 2)))
    ops = {n.name: n.op_type for n in quant_nodes(proto)}
    results = []
    for i, node in enumerate(ops):
        sess = _session(simulated_model(proto, [node], ranges).SerializeToString(), threads)
        got = run_batched(infer_with(sess), probe_crops)
        a = agreement(ref, got)
        rel = float(np.sqrt(np.mean((got[0] - ref[0]) ** 2) + np.mean((got[1] - ref[1]) ** 2)) / (ref_norm + 1e-12))
        results.append(LayerSensitivity(node, ops[node], a.mean_px_error, a.within_2px, rel))
        if log and (i + 1) % 10 == 0:
            log(f"int8 sensitivity: {i + 1}/{len(ops)} layers")
    results.sort(key=lambda r: (r.mean_px_error, r.logit_rel_error), reverse=True)
    return results


__all__ = ["LayerSensitivity", "layer_sensitivity", "quant_nodes", "weight_matrices", "activation_inputs",
           "collect_ranges", "simulated_model", "fake_quant_weight"]
