"""Export a DWPose model to LiteRT (TensorFlow Lite, the runtime Android ships): fp32, fp16 weights, and INT8.

fp32: `litert_torch.convert` of the nn.Module. The interface stays NCHW (1,3,H,W) float32 in, (1,K,2W) and
(1,K,2H) float32 out, like the other runtimes: the converter runs the graph NHWC inside and puts one
TRANSPOSE after the input. fp16: the fp32 file with the weights of the convolutions and fully-connected
layers stored as fp16 (ai-edge-quantizer's float casting, weight-only): dequantised once at load, XNNPACK
computes in fp32, so the file is half the size and the numbers are those of fp16-rounded weights.

INT8 (ai-edge-quantizer static quantisation, min/max ranges over the calibration crops; weights int8
symmetric per output channel, activations int8 per tensor): only the CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED ops with constant weights are quantized, the SiLU / ScaleNorm / attention ops between them
stay fp32 (as in the onnxruntime INT8 export), and so do the two layers writing the SimCC logits: an int8
output tensor has 256 levels, measured on the embedded model: 63 % of held-out keypoints within 2 px with
every op int8, 67 % with conv/FC int8 and int8 logits, 91 % with float logits, before any layer of the
sensitivity ranking is kept in fp32. The ranking (ONNX node names, export/int8_sensitivity.py) is mapped to
the tflite ops by their weights (`map_ops_to_onnx`), as the ncnn INT8 export does; the held-out gate of
export/int8.py decides, like for every other runtime (embedded model: 16 layers in fp32, 95.9 % within 2 px).
On x86 XNNPACK (1 thread) this INT8 file is no faster than fp32 (17.2 vs 17.5 ms per crop): each int8 conv is
wrapped in QUANTIZE/DEQUANTIZE around the fp32 SiLU. Quantizing every op (int8 SiLU) measured ~17 % faster
than fp32 but 63 % (93 % with the head in fp32) of keypoints within 2 px before any search; its value is on
ARM, where XNNPACK's int8 kernels gain more, which was not measured here.

Only a torch model converts: an export from an ONNX file needs the checkpoint, except the embedded default
(its ONNX is the embedded checkpoint exported, so the checkpoint is converted; `module_for_litert`).
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dwpose_edge.embedded import EMBEDDED, EMBEDDED_ONNX
from dwpose_edge.errors import ExportError
from dwpose_edge.export.int8_ncnn import match_weights
from dwpose_edge.hashing import sha256_file
from dwpose_edge.models import load_model
from dwpose_edge.runtimes.base import require

EXTRA = "dwpose-edge[litert-export]"
SIGNATURE = "serving_default"
WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")  # the ops INT8 and fp16 touch
ALGORITHM = "min_max_uniform_quantize"


def module_for_litert(model: str, torch_model: nn.Module | None, fp32_onnx: str | os.PathLike | None) -> nn.Module:
    """The nn.Module to convert: the export's torch model, or for the embedded default's ONNX (identified by
    its sha256) the embedded checkpoint; any other ONNX source is an ExportError naming what to pass."""
    if torch_model is not None:
        return torch_model
    entry = EMBEDDED_ONNX.get(model)
    if fp32_onnx is not None and entry is not None and model in EMBEDDED and sha256_file(fp32_onnx) == entry[1]:
        return load_model(model, None)
    raise ExportError("the LiteRT export converts a PyTorch model (litert-torch), not an ONNX file: export from "
                      f"the checkpoint (weights=<mmpose .pth> or a registry name such as '{model}')")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence stdout/stderr at the file-descriptor level (litert-torch's progress lines, absl/C++ logs)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            with contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _write_atomic(path: Path, data: bytes) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tflite.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc}; choose a writable output path with free space") from exc
    return path


def export_litert_fp32(model: nn.Module, path: str | os.PathLike) -> Path:
    """Convert `model` (a DWPose nn.Module) to an fp32 .tflite with a (1,3,H,W) float32 NCHW input."""
    litert_torch = require("litert_torch", EXTRA)
    path = Path(path)
    w, h = model.spec.input_size
    model = model.float().eval().cpu()
    sample = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.tflite"
        try:
            with _quiet():
                litert_torch.convert(model, (sample,)).export(str(raw))
        except Exception as exc:  # the converter raises its own error types from torch.export / MLIR
            raise ExportError(f"litert-torch cannot convert the model: {str(exc).strip()[:300]}") from exc
        _write_atomic(path, raw.read_bytes())
    _WRITTEN[os.fspath(path.resolve())] = _stat_key(path)
    return path


_WRITTEN: dict[str, tuple[int, int, int]] = {}  # fp32 files written by this process: path -> (inode, size, mtime)


def _stat_key(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def export_litert(model: nn.Module, path: str | os.PathLike, precision: str,
                  fp32_tflite: str | os.PathLike | None = None) -> Path:
    """Write `model` as a `precision` (fp32 / fp16) .tflite at `path`. fp16 starts from `fp32_tflite` when this
    process wrote that file (an fp32 artifact of the same export), else from a fresh conversion in a temporary
    folder: never from a file left in the folder by an earlier run."""
    path = Path(path)
    if precision == "fp32":
        return export_litert_fp32(model, path)
    if precision != "fp16":
        raise ExportError(f"export_litert writes fp32 or fp16, not {precision!r} (int8: LiteRtQuantizer)")
    if fp32_tflite is not None and Path(fp32_tflite).is_file() \
            and _WRITTEN.get(os.fspath(Path(fp32_tflite).resolve())) == _stat_key(Path(fp32_tflite)):
        return export_litert_fp16(fp32_tflite, path)
    with tempfile.TemporaryDirectory() as tmp:
        return export_litert_fp16(export_litert_fp32(model, Path(tmp) / "fp32.tflite"), path)


def _recipe(weight_ops: dict[str, str], quantize: Iterable[str], float_cast: bool) -> list[dict]:
    """An ai-edge-quantizer recipe quantizing exactly the ops whose output tensors are named in `quantize`
    (`weight_ops`: output tensor name -> op type). Graph input and outputs stay float32."""
    if float_cast:
        config = {"weight_tensor_config": {"num_bits": 16, "symmetric": True, "granularity": "TENSORWISE",
                                           "dtype": "FLOAT"},
                  "compute_precision": "FLOAT", "explicit_dequantize": True, "skip_checks": False,
                  "min_weight_elements": 0}
        algorithm = "float_casting"
    else:
        config = {"activation_tensor_config": {"num_bits": 8, "symmetric": False, "granularity": "TENSORWISE",
                                               "dtype": "INT"},
                  "weight_tensor_config": {"num_bits": 8, "symmetric": True, "granularity": "CHANNELWISE",
                                           "dtype": "INT"},
                  "compute_precision": "INTEGER", "explicit_dequantize": False, "skip_checks": False,
                  "min_weight_elements": 0}
        algorithm = ALGORITHM
    # the quantizer matches an op by its scope: its output tensor names, each followed by ';'
    recipe = [{"regex": f"^{re.escape(name)};$", "operation": weight_ops[name], "algorithm_key": algorithm,
               "op_config": config} for name in quantize]
    recipe += [{"regex": ".*", "operation": io, "algorithm_key": "no_quantize"} for io in ("INPUT", "OUTPUT")]
    return recipe


def export_litert_fp16(fp32_tflite: str | os.PathLike, path: str | os.PathLike) -> Path:
    """The fp32 .tflite with conv / fully-connected weights stored as fp16 (dequantised at load, fp32 compute)."""
    aeq = require("ai_edge_quantizer.quantizer", EXTRA)
    ops = TfliteOps(fp32_tflite)
    quantizer = aeq.Quantizer(str(fp32_tflite), _recipe(ops.types, ops.weighted, float_cast=True))
    with _quiet():
        result = quantizer.quantize(enable_progress_report=False)
    return _write_atomic(Path(path), bytes(result.quantized_model))


class TfliteOps:
    """The weighted ops of a float .tflite: output tensor name -> op type, their constant weights as
    (outputs, inputs) matrices (comparable with `int8_sensitivity.weight_matrices`), and the ops that write
    the graph outputs."""

    def __init__(self, path: str | os.PathLike) -> None:
        interpreter_mod = require("ai_edge_litert.interpreter", "dwpose-edge[litert]")
        it = interpreter_mod.Interpreter(
            model_path=os.fspath(path),
            experimental_op_resolver_type=interpreter_mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        tensors = {t["index"]: t for t in it.get_tensor_details()}
        outputs = {o["index"] for o in it.get_output_details()}
        self.types: dict[str, str] = {}
        self.matrices: dict[str, np.ndarray] = {}
        self.outputs: set[str] = set()
        for op in it._get_ops_details():  # noqa: SLF001 (the documented way to list ops in the Python API)
            kind = op["op_name"]
            if kind not in WEIGHT_OPS or len(op["inputs"]) < 2 or op["inputs"][1] < 0:
                continue
            name = tensors[op["outputs"][0]]["name"]
            try:
                weight = np.array(it.get_tensor(op["inputs"][1]), np.float32)  # only constants are readable now
            except ValueError:
                continue  # an activation x activation product (attention): no constant weight, stays float
            if kind == "DEPTHWISE_CONV_2D":  # (1, kh, kw, C) -> (C, kh*kw)
                weight = weight.reshape(-1, weight.shape[-1]).T
            elif kind == "CONV_2D":  # (O, kh, kw, I) -> (O, I*kh*kw) in ONNX's (I, kh, kw) order
                weight = weight.transpose(0, 3, 1, 2).reshape(weight.shape[0], -1)
            self.types[name] = kind
            self.matrices[name] = weight
            if op["outputs"][0] in outputs:
                self.outputs.add(name)
        if not self.types:
            raise ExportError(f"{path} has no convolution or fully-connected op with constant weights; "
                              "not a converted pose model")

    @property
    def weighted(self) -> list[str]:
        return list(self.types)


def map_ops_to_onnx(ops: TfliteOps, onnx_weights: dict[str, np.ndarray]) -> dict[str, str]:
    """tflite op (output tensor name) -> ONNX node name, by matching weights (`int8_ncnn.match_weights`)."""
    return match_weights(ops.matrices, onnx_weights)


class LiteRtQuantizer:
    """Static INT8 of one fp32 .tflite: calibrated once on the calibration crops, then quantized with any set
    of ONNX-named layers kept in fp32 (what the INT8 export's search asks for)."""

    def __init__(self, fp32_tflite: str | os.PathLike, onnx_weights: dict[str, np.ndarray], crops: np.ndarray,
                 threads: int | None = None) -> None:
        self.aeq = require("ai_edge_quantizer.quantizer", EXTRA)
        self.path = Path(fp32_tflite)
        self.ops = TfliteOps(self.path)
        self.onnx_names = map_ops_to_onnx(self.ops, onnx_weights)  # tflite op -> ONNX node
        # quantizable: weighted ops matched to an ONNX node, but those writing the SimCC logits (module doc)
        self.candidates = [op for op in self.ops.weighted if op in self.onnx_names and op not in self.ops.outputs]
        self.n_calib = int(len(crops))
        quantizer = self.aeq.Quantizer(str(self.path), _recipe(self.ops.types, self.candidates, float_cast=False))
        inputs = self._input_name()
        data = {SIGNATURE: [{inputs: np.ascontiguousarray(c[None], np.float32)} for c in crops]}
        with _quiet():
            self.calibration = quantizer.calibrate(data, num_threads=max(1, int(threads or os.cpu_count() or 1)))

    def _input_name(self) -> str:
        interpreter_mod = require("ai_edge_litert.interpreter", "dwpose-edge[litert]")
        it = interpreter_mod.Interpreter(model_path=os.fspath(self.path))
        runner = it.get_signature_runner(SIGNATURE)
        names = list(runner.get_input_details())
        if len(names) != 1:
            raise ExportError(f"{self.path}: signature {SIGNATURE!r} has inputs {names}; a pose model has one")
        return names[0]

    def quantize(self, out_path: str | os.PathLike, fp_layers: Iterable[str] = ()) -> dict:
        """Write the INT8 .tflite with the ops of the ONNX nodes `fp_layers` kept fp32; returns what was done."""
        keep = set(fp_layers)
        int8 = [op for op in self.candidates if self.onnx_names[op] not in keep]
        quantizer = self.aeq.Quantizer(str(self.path), _recipe(self.ops.types, int8, float_cast=False))
        with _quiet():
            result = quantizer.quantize(self.calibration, enable_progress_report=False)
        _write_atomic(Path(out_path), bytes(result.quantized_model))
        return {"method": "ai-edge-quantizer static int8 (min/max activation ranges per tensor, per-channel "
                          "symmetric weights); only conv / fully-connected ops, SimCC output layers fp32",
                "int8_ops": len(int8), "fp32_ops": len(self.ops.weighted) - len(int8),
                "output_ops_fp32": sorted(self.onnx_names.get(op, op) for op in self.ops.outputs),
                "n_calib": self.n_calib}
