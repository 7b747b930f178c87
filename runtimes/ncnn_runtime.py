"""ncnn runtime: a pnnx-converted `.param`/`.bin` pair, one crop at a time (ncnn has no batch dimension).

Blob names, the input size and which output is simcc_x are read from the files, never hard-coded:
the Input layer's top blob is the input (its `0=W 1=H 2=C` params, when present, give the size),
the outputs are the blobs produced and never consumed, and simcc_x / simcc_y are told apart by
their bin counts (2W vs 2H) on a probe run at load time.

Thread safety: one `ncnn.Net` is shared and every `infer` call makes its own Extractor, which
ncnn supports; concurrent `infer` calls from several Python threads are safe.
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dwpose_edge.errors import InputError, ModelFileError
from dwpose_edge.runtimes.base import check_batch, require

NCNN_MAGIC = "7767517"
PRECISIONS = ("fp32", "fp16", "int8")
# the param key holding the int8 scale term of the layers ncnn can run in int8
_INT8_FLAG = {"Convolution": "8", "ConvolutionDepthWise": "8", "InnerProduct": "8", "Gemm": "18"}


@dataclass(frozen=True)
class ParamInfo:
    """What a text .param file declares: input blob, its shape hint, and the graph's output blobs."""

    input_blob: str
    input_shape: tuple[int, ...] | None  # (C, H, W) when the Input layer carries 0=W 1=H 2=C
    output_blobs: tuple[str, ...]
    layer_types: tuple[str, ...]
    int8: bool = False  # some layer carries ncnn's int8 flag (Convolution/InnerProduct 8=, Gemm 18=)


def read_param(path: str | os.PathLike) -> ParamInfo:
    """Parse an ncnn text .param; raise ModelFileError when it is empty, truncated or not an ncnn param."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"ncnn param file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"cannot read ncnn param {path} as text ({exc}); binary .param.bin files are not "
                             "supported, re-export with dwpose-edge export --to ncnn") from exc
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].strip() != NCNN_MAGIC:
        raise ModelFileError(f"{path} is not an ncnn text param file (first line must be {NCNN_MAGIC}); "
                             "the file is empty or corrupt: re-export it")
    try:
        n_layers, n_blobs = (int(v) for v in lines[1].split())
    except (IndexError, ValueError) as exc:
        raise ModelFileError(f"{path}: bad layer/blob count line; the file is corrupt, re-export it") from exc
    body = lines[2:]
    if len(body) != n_layers:
        raise ModelFileError(f"{path} declares {n_layers} layers but holds {len(body)} (truncated or edited file); "
                             "re-export it")
    produced: list[str] = []
    consumed: set[str] = set()
    inputs: list[tuple[str, dict[str, str]]] = []
    types = []
    int8 = False
    for i, line in enumerate(body):
        tok = line.split()
        try:
            ltype, n_in, n_out = tok[0], int(tok[2]), int(tok[3])
            bottoms, tops = tok[4:4 + n_in], tok[4 + n_in:4 + n_in + n_out]
            params = dict(t.split("=", 1) for t in tok[4 + n_in + n_out:])
        except (IndexError, ValueError) as exc:
            raise ModelFileError(f"{path}: layer line {i + 3} is malformed ({line[:80]!r}); "
                                 "re-export the model") from exc
        if len(tops) != n_out or len(bottoms) != n_in:
            raise ModelFileError(f"{path}: layer line {i + 3} is truncated ({line[:80]!r}); re-export the model")
        types.append(ltype)
        int8 = int8 or (ltype in _INT8_FLAG and params.get(_INT8_FLAG[ltype], "0") != "0")
        consumed.update(bottoms)
        produced.extend(tops)
        if ltype == "Input":
            inputs.append((tops[0], params))
    if len(set(produced)) != n_blobs:
        raise ModelFileError(f"{path} declares {n_blobs} blobs but its layers produce {len(set(produced))}; "
                             "the file is corrupt, re-export it")
    if len(inputs) != 1:
        raise ModelFileError(f"{path} has {len(inputs)} Input layers; a pose model has exactly one")
    blob, params = inputs[0]
    shape = None
    try:
        w, h, c = int(params.get("0", 0)), int(params.get("1", 0)), int(params.get("2", 0))
        if w > 0 and h > 0 and c > 0:
            shape = (c, h, w)
    except ValueError:
        shape = None
    outputs = tuple(dict.fromkeys(b for b in produced if b not in consumed))
    return ParamInfo(blob, shape, outputs, tuple(types), int8)


def _capsule_pointer(capsule) -> int:
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return get(capsule, None)


def _counting_reader(ncnn, handle):
    """An ncnn.DataReader over an open file that records how many bytes ncnn asked for and got."""

    class _Reader(ncnn.DataReader):
        def __init__(self) -> None:
            super().__init__()
            self.requested = 0
            self.delivered = 0

        def scan(self, fmt, p) -> int:  # text parsing is not used for .bin files
            return 0

        def read(self, buf, size) -> int:
            size = int(size)
            self.requested += size
            data = handle.read(size)
            if data:
                ctypes.memmove(_capsule_pointer(buf), data, len(data))
            self.delivered += len(data)
            return len(data)

    return _Reader()


# Why fp16 means fp16 storage with fp32 arithmetic: ncnn's fp16 arithmetic (on by default on ARMv8.2 cores with
# 'asimdhp': Cortex-A76/A78, Neoverse-N1, i.e. Raspberry Pi 5 and Jetson Orin) moves this model's keypoints.
# Measured in the ARM lane (qemu neoverse-n1, embedded dwpose-t, 4 real-photo crops, crop px vs torch fp32):
# fp16 arithmetic everywhere 90.8% within 1 px (max 126 px); arithmetic off in the head only (layer featmask
# 31=1 from the 7x7 conv on) 97.9%; from the head's MLP on 95.1%; fp16 storage with fp32 arithmetic 99.6%
# (the 99% gate passes; on x86 and ARMv8.0 ncnn never computes in fp16 anyway). The backbone's fp16
# arithmetic alone fails the gate, so no per-layer mask saves it for this model.
FP16_ARITHMETIC = False


class NcnnRuntime:
    """Runs an ncnn pose model. `precision` fp32 turns every fp16/bf16 path off (results match torch to ~1e-5);
    fp16 turns ncnn's fp16 storage and packing on where the CPU supports them, arithmetic stays fp32
    (FP16_ARITHMETIC); int8 runs a model
    quantized by `export.int8_ncnn` with `use_int8_inference` (its fp32 layers stay fp32). An int8 file must
    be opened with precision='int8' and only an int8 file may be: the other pairing gives wrong numbers.
    """

    name = "ncnn"

    def __init__(self, param_path: str | os.PathLike, bin_path: str | os.PathLike,
                 input_size: tuple[int, int] | None = None, threads: int | None = None,
                 precision: str = "fp32") -> None:
        ncnn = require("ncnn", "dwpose-edge[ncnn]")
        if precision not in PRECISIONS:
            raise InputError(f"ncnn precision must be one of {PRECISIONS}, got {precision!r}")
        self.param_path, self.bin_path = Path(param_path), Path(bin_path)
        info = read_param(self.param_path)
        if info.int8 != (precision == "int8"):
            raise ModelFileError(f"{self.param_path} is {'an int8' if info.int8 else 'a float'} ncnn model but "
                                 f"precision={precision!r} was asked for; open it with "
                                 f"precision={'int8' if info.int8 else 'fp32 or fp16'!r}")
        if not self.bin_path.is_file():
            raise ModelFileError(f"ncnn weights file not found: {self.bin_path}")
        if self.bin_path.stat().st_size == 0:
            raise ModelFileError(f"ncnn weights file {self.bin_path} is empty; re-export the model")

        if info.input_shape is not None:
            c, h, w = info.input_shape
            if c != 3:
                raise ModelFileError(f"{self.param_path}: input has {c} channels, a pose model takes 3")
            if input_size is not None and tuple(input_size) != (w, h):
                raise ModelFileError(f"{self.param_path} takes {w}x{h} (WxH) crops but input_size={tuple(input_size)} "
                                     "was given (a file for another model size?)")
            self.input_size: tuple[int, int] = (w, h)
        elif input_size is not None:
            self.input_size = (int(input_size[0]), int(input_size[1]))
        else:
            raise InputError(f"{self.param_path} does not record its input size; pass input_size=(W, H)")
        if len(info.output_blobs) != 2:
            raise ModelFileError(f"{self.param_path} has {len(info.output_blobs)} output blobs "
                                 f"{list(info.output_blobs)}; a SimCC pose model has 2 (simcc_x, simcc_y)")

        self.precision = precision
        self.threads = int(threads) if threads else max(1, os.cpu_count() or 1)
        net = ncnn.Net()
        opt = net.opt
        opt.num_threads = self.threads
        opt.use_vulkan_compute = False
        fp16 = precision == "fp16"
        opt.use_fp16_storage = fp16
        opt.use_fp16_packed = fp16
        opt.use_fp16_arithmetic = fp16 and FP16_ARITHMETIC  # fp16 storage, fp32 math (FP16_ARITHMETIC)
        opt.use_bf16_storage = False
        if hasattr(opt, "use_bf16_packed"):
            opt.use_bf16_packed = False
        opt.use_int8_inference = precision == "int8"  # before load_model: create_pipeline picks the kernels
        if net.load_param(str(self.param_path)) != 0:
            raise ModelFileError(f"ncnn cannot parse {self.param_path} (corrupt, truncated, or it uses layers this "
                                 f"ncnn {getattr(ncnn, '__version__', '')} lacks); re-export the model")
        self._load_weights(ncnn, net)
        self.net = net
        self.input_blob = info.input_blob
        self._order = self._probe_outputs(info.output_blobs)

    def _load_weights(self, ncnn, net) -> None:
        size = self.bin_path.stat().st_size
        try:
            with open(self.bin_path, "rb") as handle:
                reader = _counting_reader(ncnn, handle)
                ret = net.load_model(reader)
        except Exception:  # an ncnn build whose DataReader cannot be subclassed: plain load, no byte count
            net.clear()
            if net.load_param(str(self.param_path)) != 0:
                raise ModelFileError(f"ncnn cannot parse {self.param_path}; re-export the model") from None
            ret, reader = net.load_model(str(self.bin_path)), None
        if ret != 0 or (reader is not None and reader.delivered < reader.requested):
            raise ModelFileError(f"ncnn cannot load the weights {self.bin_path}: the file is truncated or does not "
                                 f"belong to {self.param_path.name} (ncnn load_model returned {ret}); re-export it")
        if reader is not None and reader.delivered != size:
            raise ModelFileError(f"{self.bin_path} holds {size} bytes but {self.param_path.name} uses "
                                 f"{reader.delivered}: the weights belong to another model or are corrupt; re-export")

    def _extract(self, crop: np.ndarray, blobs) -> list[np.ndarray]:
        import ncnn

        ex = self.net.create_extractor()
        mat = ncnn.Mat(crop)  # shares `crop`'s memory, which stays alive for the call
        ex.input(self.input_blob, mat)
        outs = []
        for blob in blobs:
            ret, out = ex.extract(blob)
            if ret != 0:
                raise ModelFileError(f"ncnn failed to compute blob {blob!r} of {self.param_path} (code {ret})")
            outs.append(np.array(out, dtype=np.float32, copy=True))
        return outs

    def _probe_outputs(self, blobs: tuple[str, ...]) -> tuple[str, str]:
        w, h = self.input_size
        outs = self._extract(np.zeros((3, h, w), np.float32), blobs)
        dims = [o.shape[-1] if o.ndim == 2 else None for o in outs]
        if any(o.ndim != 2 for o in outs):
            raise ModelFileError(f"{self.param_path}: outputs have shapes {[o.shape for o in outs]}, "
                                 "expected (K, 2W) and (K, 2H)")
        if dims == [2 * w, 2 * h]:
            return blobs[0], blobs[1]
        if dims == [2 * h, 2 * w]:
            return blobs[1], blobs[0]
        raise ModelFileError(f"{self.param_path}: output bins {dims} do not match a {w}x{h} input "
                             f"(expected {2 * w} and {2 * h}); wrong input_size or not a SimCC model")

    @property
    def output_blobs(self) -> tuple[str, str]:
        """(simcc_x blob, simcc_y blob) names in the .param file."""
        return self._order

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = check_batch(batch, self.input_size)
        xs, ys = [], []
        for crop in batch:
            x, y = self._extract(np.ascontiguousarray(crop), self._order)
            xs.append(x)
            ys.append(y)
        return np.stack(xs), np.stack(ys)
