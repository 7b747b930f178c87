"""ncnn INT8: calibration table and int8 param/bin rewrite in Python (no ncnn2table/ncnn2int8 ships in any wheel).

Format (ncnn `src/layer/{convolution,convolutiondepthwise,innerproduct,gemm}.cpp` load_param/load_model,
`src/modelbin.cpp`, `tools/quantize/ncnn2int8.cpp`):

* Convolution / InnerProduct: param `8=2`; .bin = weight (tag 0x000D4B38 + int8 data padded to 4 bytes,
  per-output-channel scale s_c = 127 / max|w_c|, q = round(w * s_c) clamped to +-127), bias (raw fp32),
  `weight_data_int8_scales` (num_output raw fp32), `bottom_blob_int8_scales` (1 raw fp32 = 127 / threshold).
* ConvolutionDepthWise: param `8=1`; scales per group (num_output floats), then the bottom scale.
* Gemm with a constant B: param `18=2`; B stored int8 with one scale (127 / max|B|) written after the C
  data; the A input is quantized per row at run time by ncnn, so it needs no calibration.
* Every other layer (Swish, MatMul of two activations, Reduction, ...) stays fp32: ncnn dequantizes the
  int8 layers' outputs to fp32 (no requantize fusion here: the SiLUs sit between all convolutions).

Activation thresholds come from the fp32 ncnn model itself on the calibration crops (the blobs each
quantized layer reads): `absmax` (default), `mse` (threshold minimising the expected squared error of
the |x| histogram's quantization) or `kl` (ncnn2table's default: 2048-bin |x| histogram, the clip
threshold with the smallest KL divergence to its 128-level quantization). Measured on the trained test
dwpose-t with its six sensitive head layers in fp32, share of held-out keypoints within 2 px of fp32:
absmax 98.1 %, mse 92.5 %, kl 1.7 % (KL clips the long-tailed SiLU outputs to a fraction of their
range, e.g. 0.72 instead of 11 at the stem). Layers named in `fp_layers` (ONNX node names, mapped to
ncnn layers by matching their weights) keep fp32 weights and no int8 flag.

The result runs in the `ncnn` wheel with `opt.use_int8_inference = True` (`NcnnRuntime(precision='int8')`).
"""
from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from dwpose_edge.errors import CalibrationError, ExportError, ModelFileError
from dwpose_edge.runtimes.base import open_runtime

TAG_FP32 = 0x00000000
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_ALT = 0x0002C056
HIST_BINS = 2048
TARGET_BINS = 128
QUANTIZABLE = ("Convolution", "ConvolutionDepthWise", "InnerProduct", "Gemm")
# layer types known to carry no weights in the .bin (anything else unknown is refused, not guessed)
NO_WEIGHTS = {"AbsVal", "BinaryOp", "Cast", "Clip", "Concat", "Crop", "Dropout", "ELU", "Eltwise", "ExpandDims",
              "Flatten", "GELU", "HardSigmoid", "HardSwish", "Input", "Interp", "MatMul", "Mish", "Noop", "Packing",
              "Padding", "Permute", "Pooling", "Power", "ReLU", "Reduction", "Reshape", "Sigmoid", "Slice",
              "Softmax", "Split", "Squeeze", "Swish", "TanH", "UnaryOp", "Flip", "Tile", "CopyTo", "Shrink"}


# --------------------------------------------------------------------------------------------- param / bin


@dataclass
class Layer:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: list[tuple[str, str]]  # (key, raw value) in file order
    weights: list[tuple[str, np.ndarray]] = field(default_factory=list)  # ('tagged'|'raw', float32 data)

    def get(self, key: int, default: Any = 0) -> Any:
        for k, v in self.params:
            if k == str(key):
                try:
                    return int(v)
                except ValueError:
                    return float(v)
        return default

    def set(self, key: int, value: Any) -> None:
        self.params = [(k, v) for k, v in self.params if k != str(key)] + [(str(key), str(value))]

    def line(self) -> str:
        return " ".join([f"{self.type:<24}", f"{self.name:<24}", str(len(self.bottoms)), str(len(self.tops)),
                         *self.bottoms, *self.tops, *(f"{k}={v}" for k, v in self.params)]).rstrip()


@dataclass
class NcnnModel:
    magic: str
    n_blobs: int
    layers: list[Layer]

    def write(self, param: Path, bin_: Path, int8: dict[str, dict] | None = None) -> None:
        """Write param + bin; layers named in `int8` are written quantized (see module doc)."""
        int8 = int8 or {}
        with open(bin_, "wb") as f:
            for layer in self.layers:
                q = int8.get(layer.name)
                if q is None:
                    for kind, data in layer.weights:
                        if kind == "tagged":
                            f.write(struct.pack("<I", TAG_FP32))
                        f.write(np.ascontiguousarray(data, "<f4").tobytes())
                    continue
                _write_int8_layer(f, layer, q)
        text = [self.magic, f"{len(self.layers)} {self.n_blobs}", *(la.line() for la in self.layers)]
        param.write_text("\n".join(text) + "\n", encoding="utf-8")


def read_model(param: str | os.PathLike, bin_: str | os.PathLike) -> NcnnModel:
    """Parse a text .param and its .bin (fp32 or fp16 weights) into layers with their weight arrays."""
    lines = [ln.strip() for ln in Path(param).read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines or lines[0] != "7767517":
        raise ModelFileError(f"{param} is not an ncnn text param file")
    n_layers, n_blobs = (int(v) for v in lines[1].split())
    layers = []
    for ln in lines[2:2 + n_layers]:
        tok = _split_param_line(ln)
        nb, nt = int(tok[2]), int(tok[3])
        bottoms, tops = tok[4:4 + nb], tok[4 + nb:4 + nb + nt]
        params = [tuple(t.split("=", 1)) for t in tok[4 + nb + nt:]]
        layers.append(Layer(tok[0], tok[1], bottoms, tops, params))
    data = Path(bin_).read_bytes()
    pos = 0
    for layer in layers:
        for kind, count in _weight_layout(layer):
            arr, pos = _read_blob(data, pos, count, kind, layer)
            layer.weights.append((kind, arr))
    if pos != len(data):
        raise ModelFileError(f"{bin_}: the param file uses {pos} bytes of weights but the file holds {len(data)}")
    return NcnnModel(lines[0], n_blobs, layers)


def _split_param_line(line: str) -> list[str]:
    # quoted values (pnnx writes 6="0w,0c,0n" for Reshape expressions) contain no spaces in practice
    return re.findall(r'\S+', line)


# layers storing a tagged weight blob then an optional raw bias: type -> (weight-count key, bias-term key)
_WEIGHTED = {**dict.fromkeys(("Convolution", "ConvolutionDepthWise", "Convolution1D", "Deconvolution",
                              "DeconvolutionDepthWise"), (6, 5)), "InnerProduct": (2, 1)}


def _weight_layout(layer: Layer) -> list[tuple[str, int]]:
    """[(kind, element count)] of what ncnn's load_model reads for this (fp32) layer."""
    t = layer.type
    if t in _WEIGHTED:
        count_key, bias_key = _WEIGHTED[t]
        if layer.get(19, 0):
            return []  # dynamic weight (a second input)
        if layer.get(8, 0):
            raise ExportError(f"layer {layer.name} is already int8 (8={layer.get(8)}); quantize the fp32 model")
        return [("tagged", layer.get(count_key))] + ([("raw", layer.get(0))] if layer.get(bias_key) else [])
    if t == "Gemm":
        if layer.get(18, 0):
            raise ExportError(f"layer {layer.name} is already int8; quantize the fp32 model")
        m, n, k = layer.get(7), layer.get(8), layer.get(9)
        out = []
        if layer.get(4):
            out.append(("tagged", m * k))
        if layer.get(5):
            out.append(("tagged", n * k))
        if layer.get(6):
            bc = layer.get(10, 0)
            size = {0: 1, 1: m, 2: m, 3: m * n, 4: n}.get(bc, 0)
            if size:
                out.append(("tagged", size))
        return out
    if t == "MemoryData":
        dims = [layer.get(0), layer.get(1), layer.get(11), layer.get(2)]
        count = int(np.prod([d for d in dims if d])) if any(dims) else 0
        return [("raw" if layer.get(21, 1) == 1 else "tagged", count)]
    if t == "BatchNorm":
        return [("raw", layer.get(0))] * 4
    if t == "Scale":
        n = layer.get(0)
        return ([("raw", n)] if n != -233 else []) + ([("raw", abs(n))] if layer.get(1) else [])
    if t == "PReLU":
        return [("raw", layer.get(0))]
    if t in NO_WEIGHTS:
        return []
    raise ExportError(f"ncnn layer type {t} ({layer.name}) is not known to the int8 rewriter; "
                      "it cannot tell how many weights it stores")


def _read_blob(data: bytes, pos: int, count: int, kind: str, layer: Layer) -> tuple[np.ndarray, int]:
    if kind == "raw":
        end = pos + 4 * count
        if end > len(data):
            raise ModelFileError(f"the .bin ends inside the weights of {layer.name}")
        return np.frombuffer(data, "<f4", count, pos).astype(np.float32), end
    if pos + 4 > len(data):
        raise ModelFileError(f"the .bin ends before the weights of {layer.name}")
    tag = struct.unpack_from("<I", data, pos)[0]
    pos += 4
    if tag in (TAG_FP32, TAG_FP32_ALT):
        return np.frombuffer(data, "<f4", count, pos).astype(np.float32), pos + 4 * count
    if tag == TAG_FP16:
        arr = np.frombuffer(data, "<f2", count, pos).astype(np.float32)
        return arr, pos + ((2 * count + 3) // 4) * 4
    raise ExportError(f"{layer.name}: weight storage tag {tag:#010x} is not fp32/fp16; start from an fp32 ncnn export")


def _round_int8(x: np.ndarray) -> np.ndarray:
    """ncnn's float2int8: round half away from zero, clamp to [-127, 127]."""
    return np.clip(np.sign(x) * np.floor(np.abs(x) + 0.5), -127, 127).astype(np.int8)


def _int8_blob(q: np.ndarray) -> bytes:
    raw = q.astype(np.int8).tobytes()
    return struct.pack("<I", TAG_INT8) + raw + b"\0" * ((-len(raw)) % 4)


def _write_int8_layer(f, layer: Layer, q: dict) -> None:
    t = layer.type
    w = layer.weights[0][1]
    if t in ("Convolution", "InnerProduct", "ConvolutionDepthWise"):
        groups = layer.get(7, 1) if t == "ConvolutionDepthWise" else layer.get(0)
        wg = w.reshape(groups, -1)
        absmax = np.abs(wg).max(axis=1)
        scales = np.where(absmax > 0, 127.0 / np.maximum(absmax, 1e-30), 1.0).astype(np.float32)
        f.write(_int8_blob(_round_int8(wg * scales[:, None]).reshape(-1)))
        for _, extra in layer.weights[1:]:  # bias: raw fp32
            f.write(np.ascontiguousarray(extra, "<f4").tobytes())
        f.write(scales.astype("<f4").tobytes())
        f.write(np.float32(q["bottom_scale"]).astype("<f4").tobytes())
        return
    if t == "Gemm":
        if layer.get(4):
            raise ExportError(f"{layer.name}: int8 Gemm with a constant A is not supported here")
        absmax = float(np.abs(w).max())
        scale = np.float32(127.0 / absmax if absmax > 0 else 1.0)
        f.write(_int8_blob(_round_int8(w * scale)))
        for _, extra in layer.weights[1:]:  # C: stays fp32, tagged
            f.write(struct.pack("<I", TAG_FP32) + np.ascontiguousarray(extra, "<f4").tobytes())
        f.write(scale.astype("<f4").tobytes())
        return
    raise ExportError(f"cannot write {t} as int8")


# --------------------------------------------------------------------------------------------- calibration


def kl_threshold(hist: np.ndarray, absmax: float, target_bins: int = TARGET_BINS, eps: float = 1e-4,
                 chunk: int = 128) -> float:
    """Clip threshold (in the blob's units) minimising the KL divergence between the |x| histogram clipped
    at the threshold and its `target_bins`-level quantization expanded back over the non-empty bins
    (the TensorRT / ncnn2table entropy method), evaluated for every threshold of `target_bins`..len(hist)
    bins at once in numpy."""
    n = len(hist)
    total = float(hist.sum())
    if total <= 0 or absmax <= 0:
        return float(absmax) if absmax > 0 else 1.0
    p = hist.astype(np.float64) / total
    nz = (p != 0).astype(np.float64)
    grid = np.arange(n + 1, dtype=np.float64)
    cum_p = np.concatenate([[0.0], np.cumsum(p)])
    cum_nz = np.concatenate([[0.0], np.cumsum(nz)])
    tail = np.concatenate([np.cumsum(p[::-1])[::-1], [0.0]])  # tail[t] = sum(p[t:])
    j = np.arange(target_bins + 1, dtype=np.float64)
    best_kl, best_t = np.inf, n
    for lo in range(target_bins, n + 1, chunk):
        ts = np.arange(lo, min(lo + chunk, n + 1), dtype=np.float64)[:, None]  # (T,1) thresholds in bins
        step = ts / target_bins
        edges = j[None, :] * step  # (T, target+1)
        qmass = np.diff(np.interp(edges, grid, cum_p), axis=1)
        qcount = np.diff(np.interp(edges, grid, cum_nz), axis=1)
        dens = np.divide(qmass, qcount, out=np.zeros_like(qmass), where=qcount > 0)
        g = np.concatenate([np.zeros((len(ts), 1)), np.cumsum(dens * step, axis=1)], axis=1)  # G at edges
        pos = grid[None, :] / step  # bin borders in units of quantized levels
        k = np.minimum(np.floor(pos).astype(np.int64), target_bins - 1)
        gk = np.take_along_axis(g, k, 1)
        gk1 = np.take_along_axis(g, k + 1, 1)
        big_g = gk + (pos - k) * (gk1 - gk)
        inside = grid[None, :-1] < ts  # bins below the threshold
        expand = np.diff(big_g, axis=1) * nz[None, :] + eps
        clip = np.repeat(p[None, :] + eps, len(ts), axis=0)
        last = (ts[:, 0] - 1).astype(np.int64)
        clip[np.arange(len(ts)), last] += tail[last + 1]
        kl = np.where(inside, clip * np.log(clip / expand), 0.0).sum(axis=1)
        i = int(np.argmin(kl))
        if kl[i] < best_kl:
            best_kl, best_t = float(kl[i]), int(ts[i, 0])
    return best_t * absmax / n


def mse_threshold(hist: np.ndarray, absmax: float, levels: int = 127) -> float:
    """Clip threshold minimising the expected squared error of symmetric `levels`-step quantization of |x|
    (clipping error above the threshold + uniform rounding error below it), from the |x| histogram."""
    n = len(hist)
    total = float(hist.sum())
    if total <= 0 or absmax <= 0:
        return float(absmax) if absmax > 0 else 1.0
    p = hist.astype(np.float64) / total
    width = absmax / n
    centers = (np.arange(n) + 0.5) * width
    cand = np.arange(1, n + 1, dtype=np.float64) * width  # thresholds at bin edges
    over = np.maximum(centers[None, :] - cand[:, None], 0.0)
    clip_err = (p[None, :] * over ** 2).sum(axis=1)
    round_err = (cand / levels) ** 2 / 12.0 * np.cumsum(p)  # mass below each threshold
    return float(cand[int(np.argmin(clip_err + round_err))])


class BlobStats:
    """absmax then |x| histograms of named ncnn blobs over calibration crops (two passes, as ncnn2table)."""

    def __init__(self, param: Path, bin_: Path, blobs: list[str], input_blob: str, threads: int | None) -> None:
        import ncnn

        self.net = ncnn.Net()
        opt = self.net.opt
        opt.num_threads = int(threads) if threads else max(1, os.cpu_count() or 1)
        opt.use_vulkan_compute = False
        opt.use_fp16_storage = opt.use_fp16_packed = opt.use_fp16_arithmetic = False
        opt.use_bf16_storage = False
        opt.use_int8_inference = False
        opt.lightmode = False
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(bin_)) != 0:
            raise ExportError(f"ncnn cannot load {param} for calibration")
        self.blobs, self.input_blob = blobs, input_blob

    def _run(self, crops: np.ndarray, visit: Callable[[str, np.ndarray], None]) -> None:
        import ncnn

        for crop in crops:
            crop = np.ascontiguousarray(crop, np.float32)
            ex = self.net.create_extractor()
            ex.input(self.input_blob, ncnn.Mat(crop))
            for b in self.blobs:
                ret, m = ex.extract(b)
                if ret != 0:
                    raise ExportError(f"ncnn failed to compute blob {b} during calibration (code {ret})")
                visit(b, np.abs(np.array(m, dtype=np.float32)))

    def thresholds(self, crops: np.ndarray, method: str = "absmax") -> dict[str, float]:
        absmax = dict.fromkeys(self.blobs, 0.0)

        def amax(b, a):
            absmax[b] = max(absmax[b], float(a.max()) if a.size else 0.0)

        self._run(crops, amax)
        if method == "absmax":
            return {b: (v if v > 0 else 1.0) for b, v in absmax.items()}
        if method not in ("kl", "mse"):
            raise CalibrationError(f"unknown ncnn calibration method {method!r}; use 'mse', 'kl' or 'absmax'")
        hists = {b: np.zeros(HIST_BINS, np.int64) for b in self.blobs}

        def hist(b, a):
            if absmax[b] <= 0:
                return
            v = a[a != 0]  # zeros (ReLU/padding) carry no range information, as in ncnn2table
            idx = np.minimum((v * (HIST_BINS / absmax[b])).astype(np.int64), HIST_BINS - 1)
            hists[b] += np.bincount(idx, minlength=HIST_BINS)

        self._run(crops, hist)
        pick = kl_threshold if method == "kl" else mse_threshold
        return {b: pick(hists[b], absmax[b]) for b in self.blobs}


# --------------------------------------------------------------------------------------------- mapping


def _ncnn_matrix(layer: Layer) -> np.ndarray | None:
    """The layer's weights as (outputs, inputs) to compare with an ONNX initializer."""
    if layer.type not in QUANTIZABLE or not layer.weights:
        return None
    w = layer.weights[0][1]
    if layer.type in ("Convolution", "ConvolutionDepthWise", "InnerProduct"):
        return w.reshape(layer.get(0), -1)
    if layer.type == "Gemm" and layer.get(5) and not layer.get(4):
        n, k = layer.get(8), layer.get(9)
        return w.reshape(n, k) if layer.get(3) else w.reshape(k, n).T
    return None


def match_weights(matrices: dict[str, np.ndarray], onnx_weights: dict[str, np.ndarray]) -> dict[str, str]:
    """Layer -> ONNX node name, each ONNX weight taken once, by shape and then values up to fp rounding (< 1e-3 of
    the weight's range). `matrices` and `onnx_weights` hold weights as (outputs, inputs) (Conv W.reshape(O, -1);
    MatMul B.T). Every converter here folds BatchNorm into the convolutions, so the values agree closely."""
    by_shape: dict[tuple, list[str]] = {}
    for name, w in onnx_weights.items():
        by_shape.setdefault(w.shape, []).append(name)
    out: dict[str, str] = {}
    taken: set[str] = set()
    for layer, m in matrices.items():
        best, best_err = None, np.inf
        for name in by_shape.get(m.shape, []):
            if name in taken:
                continue
            ref = onnx_weights[name]
            err = float(np.abs(ref - m).max() / (np.abs(ref).max() + 1e-12))
            if err < best_err:
                best, best_err = name, err
        if best is not None and best_err < 1e-3:
            out[layer] = best
            taken.add(best)
    return out


def map_layers_to_onnx(model: NcnnModel, onnx_weights: dict[str, np.ndarray]) -> dict[str, str]:
    """ncnn layer name -> ONNX node name, by matching weights (`match_weights`)."""
    matrices = {layer.name: m for layer in model.layers if (m := _ncnn_matrix(layer)) is not None}
    return match_weights(matrices, onnx_weights)


# --------------------------------------------------------------------------------------------- quantize


@dataclass
class NcnnInt8Plan:
    """What `quantize_ncnn` decided: int8 layers with their bottom thresholds, fp32 layers and why."""

    int8: dict[str, dict]
    kept_fp32: dict[str, str]  # ncnn layer -> reason
    onnx_names: dict[str, str]


class NcnnCalibrator:
    """Holds the fp32 ncnn model, its layer <-> ONNX map and the activation thresholds (computed once)."""

    def __init__(self, param: Path, bin_: Path, onnx_weights: dict[str, np.ndarray], input_blob: str,
                 threads: int | None = None) -> None:
        self.param, self.bin = Path(param), Path(bin_)
        self.model = read_model(param, bin_)
        self.onnx_names = map_layers_to_onnx(self.model, onnx_weights)
        self.input_blob = input_blob
        self.threads = threads
        self._thresholds: dict[str, float] | None = None
        self.method = None

    def targets(self) -> list[Layer]:
        return [la for la in self.model.layers if la.type in QUANTIZABLE and _ncnn_matrix(la) is not None]

    def thresholds(self, crops: np.ndarray, method: str = "absmax") -> dict[str, float]:
        if self._thresholds is None or self.method != method:
            blobs = sorted({la.bottoms[0] for la in self.targets() if la.type != "Gemm"})
            self._thresholds = BlobStats(self.param, self.bin, blobs, self.input_blob, self.threads).thresholds(
                crops, method)
            self.method = method
        return self._thresholds

    def plan(self, crops: np.ndarray, fp_onnx_nodes: Iterable[str], method: str = "absmax") -> NcnnInt8Plan:
        fp = set(fp_onnx_nodes)
        thr = self.thresholds(crops, method)
        int8, kept = {}, {}
        for la in self.targets():
            onnx_name = self.onnx_names.get(la.name)
            if onnx_name is None:
                kept[la.name] = "no matching ONNX node"
            elif onnx_name in fp:
                kept[la.name] = f"sensitive ({onnx_name})"
            else:
                q = {"onnx": onnx_name}
                if la.type != "Gemm":
                    q["threshold"] = thr[la.bottoms[0]]
                    q["bottom_scale"] = 127.0 / thr[la.bottoms[0]]
                int8[la.name] = q
        return NcnnInt8Plan(int8, kept, self.onnx_names)

    def write(self, plan: NcnnInt8Plan, param_out: Path, bin_out: Path) -> None:
        layers = []  # params changed on copies: the fp32 model stays reusable
        for la in self.model.layers:
            copy = Layer(la.type, la.name, la.bottoms, la.tops, list(la.params), la.weights)
            if la.name in plan.int8:
                if la.type == "Gemm":
                    copy.set(18, 2)
                else:
                    copy.set(8, 1 if la.type == "ConvolutionDepthWise" else 2)
            layers.append(copy)
        NcnnModel(self.model.magic, self.model.n_blobs, layers).write(Path(param_out), Path(bin_out), plan.int8)


def open_int8(param: str | os.PathLike, bin_: str | os.PathLike, input_size: tuple[int, int] | None = None,
              threads: int | None = None):
    """An ncnn runtime for an int8 param/bin (int8 inference on)."""
    return open_runtime("ncnn", {"param": Path(param), "bin": Path(bin_)}, precision="int8", threads=threads,
                        input_size=input_size)
