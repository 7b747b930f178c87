"""Export a DWPose model to ncnn (`.param` + `.bin`) with pnnx, validated against its reference before it is kept.

Two sources:

* `export_ncnn(model, out_dir)`: the PyTorch model, traced with TorchScript at batch 1 and handed to pnnx.
* `onnx_to_ncnn(onnx_path, out_dir)`: an ONNX file with no checkpoint (the released `dw-ll_ucoco_384.onnx`,
  mmdeploy exports, torch's legacy or dynamo exporter). pnnx reads such files but mis-converts every
  Reduce op whose `axes` arrive as a one-element *input* (ONNX opset >= 18 for all Reduce ops, >= 13 for
  ReduceSum): its ONNX importer turns the 1-element axes tensor into a scalar `dim=-1`, and its ncnn pass
  only reads list-valued `dim`, so the ncnn Reduction gets an empty axes list (`-23303=0`) and the model is
  silently wrong (RTMCCHead's ScaleNorm `ReduceL2` -> logits off by ~1e7). Multi-axis inputs and axes
  given as an attribute convert correctly. The file is therefore rewritten first (batch fixed to 1;
  opset >= 18 Reduce ops moved back to the opset-17 attribute form, Split's `num_outputs` made explicit;
  single-axis ReduceSum also reduced over the size-1 batch axis, an identity that pnnx drops), the
  rewrite is checked against the original with onnxruntime, and only then converted.

Both validate the ncnn model (run with the precision's runtime flags) against the reference (torch or
onnxruntime on the source file) on real-photo crops plus random normalized crops, and raise ParityError
with the figures when fewer keypoints than the threshold agree within 1 px (fp32 99.5 %, fp16 98 %).

Outputs are named `{model}_{H}x{W}_{precision}.param/.bin`; the Input layer gets `0=W 1=H 2=3` so the
runtime reads the size from the file, and `{stem}.ncnn.json` records blob names, route and figures.

Run as a script:
    python export/to_ncnn.py --model dwpose-t --weights X.pth --out D --precision fp16
    python export/to_ncnn.py --onnx dw-ll_ucoco_384.onnx --out D
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from dwpose_edge.errors import ExportError, InputError, ModelFileError
from dwpose_edge.export.validate import validate, validation_crops
from dwpose_edge.onnx_file import check_onnx_file
from dwpose_edge.runtimes.base import require
from dwpose_edge.runtimes.io_names import input_size_from_shape
from dwpose_edge.runtimes.ncnn_runtime import NcnnRuntime
from dwpose_edge.runtimes.onnxruntime_runtime import OnnxRuntime

PRECISIONS = ("fp32", "fp16")
RANDOM_CROPS = 2
# Reduce ops whose `axes` moved from an attribute (opset <= 17) to an input in opset 18.
REDUCE_AXES_MOVED_IN_18 = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
                           "ReduceMin", "ReduceProd", "ReduceSumSquare")
# Ops whose schema changed after opset 17 only by new tensor types: safe to declare at opset 17.
TYPE_ONLY_CHANGES = ("Cast", "CastLike", "Constant", "ConstantOfShape", "Equal", "Flatten", "Identity", "Reshape",
                     "Shape", "Size", "Squeeze", "Transpose", "Unsqueeze")


class NcnnFiles(tuple):
    """`(param, bin)` that also carries `.agreement` (validate.Agreement) and `.info` (what the sidecar holds)."""

    def __new__(cls, param: Path, bin_: Path, agreement: Any = None, info: dict | None = None) -> "NcnnFiles":
        obj = super().__new__(cls, (Path(param), Path(bin_)))
        obj.agreement = agreement
        obj.info = info or {}
        return obj

    @property
    def param(self) -> Path:
        return self[0]

    @property
    def bin(self) -> Path:
        return self[1]


# --------------------------------------------------------------------------------------------- pnnx


def _pnnx_exe() -> str:
    pnnx = require("pnnx", "dwpose-edge[export]")
    exe = getattr(pnnx, "EXEC_PATH", None)
    if not exe or not os.path.isfile(exe):
        raise ExportError(f"the pnnx package is installed but its executable is missing ({exe}); "
                          "reinstall it: pip install --force-reinstall pnnx")
    return exe


def _run_pnnx(src: Path, input_size: tuple[int, int], fp16: bool, workdir: Path) -> tuple[Path, Path, str]:
    """Run the pnnx executable on a TorchScript or ONNX file inside `workdir`; return (param, bin, log)."""
    w, h = input_size
    param, bin_ = workdir / "model.ncnn.param", workdir / "model.ncnn.bin"
    cmd = [_pnnx_exe(), str(src), f"inputshape=[1,3,{h},{w}]f32", f"fp16={int(fp16)}", "device=cpu",
           f"ncnnparam={param}", f"ncnnbin={bin_}", f"ncnnpy={workdir / 'model_ncnn.py'}",
           f"pnnxparam={workdir / 'model.pnnx.param'}", f"pnnxbin={workdir / 'model.pnnx.bin'}",
           f"pnnxpy={workdir / 'model_pnnx.py'}", f"pnnxonnx={workdir / 'model.pnnx.onnx'}"]
    try:
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=True, timeout=3600)
    except subprocess.CalledProcessError as exc:
        log = (exc.stdout or "") + (exc.stderr or "")
        raise ExportError(f"pnnx failed on {src.name} (exit {exc.returncode}):\n{log[-3000:]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ExportError(f"pnnx did not finish converting {src.name} within {exc.timeout} s") from exc
    except OSError as exc:
        raise ExportError(f"cannot run pnnx ({cmd[0]}): {exc}") from exc
    log = proc.stdout + proc.stderr
    if not (param.is_file() and bin_.is_file() and param.stat().st_size and bin_.stat().st_size):
        raise ExportError(f"pnnx exited 0 but wrote no ncnn model for {src.name}:\n{log[-3000:]}")
    return param, bin_, log


def _set_input_shape(param: Path, input_size: tuple[int, int]) -> None:
    """Write `0=W 1=H 2=3` on the Input layer so the runtime can read the crop size from the file."""
    w, h = input_size
    lines = param.read_text(encoding="utf-8").splitlines()
    inputs = [i for i, ln in enumerate(lines) if ln.split()[:1] == ["Input"]]
    if len(inputs) != 1:
        raise ExportError(f"pnnx wrote {len(inputs)} Input layers to {param.name}, expected 1")
    i = inputs[0]
    tok = lines[i].split()
    kept = [t for t in tok[5:] if not re.match(r"^[012]=", t)]  # type name 0 1 blob [params]
    lines[i] = " ".join([f"{tok[0]:<24}", f"{tok[1]:<24}", *tok[2:5], f"0={w}", f"1={h}", "2=3", *kept]).rstrip()
    param.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------- validation


def _validation_crops(input_size: tuple[int, int]) -> np.ndarray:
    """The shared real-photo crops (grace_hopper, astronaut via crop_boxes) + seeded random normalized crops."""
    w, h = input_size
    rand = np.random.default_rng(1234).standard_normal((RANDOM_CROPS, 3, h, w)).astype(np.float32)
    return np.concatenate([validation_crops(input_size), rand])


def _validate(reference, param: Path, bin_: Path, input_size: tuple[int, int], precision: str, what: str,
              threads: int | None):
    runtime = NcnnRuntime(param, bin_, input_size=input_size, threads=threads, precision=precision)
    agreement = validate(reference, runtime.infer, _validation_crops(input_size), precision, what)
    return agreement, runtime.output_blobs, runtime.input_blob


def _finish(param: Path, bin_: Path, out_dir: Path, stem: str, agreement, blobs: tuple[str, str], input_blob: str,
            input_size: tuple[int, int], precision: str, info: dict) -> NcnnFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    # ".ncnn." keeps the .bin apart from an OpenVINO IR .bin of the same stem in one model folder
    final_param, final_bin = out_dir / f"{stem}.ncnn.param", out_dir / f"{stem}.ncnn.bin"
    os.replace(bin_, final_bin)
    os.replace(param, final_param)
    info = {"input_blob": input_blob, "outputs": {"simcc_x": blobs[0], "simcc_y": blobs[1]},
            "input_size": list(input_size), "precision": precision, **info,
            "validation": agreement.as_dict(), "tools": _versions()}
    (out_dir / f"{stem}.ncnn.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return NcnnFiles(final_param, final_bin, agreement, info)


def _versions() -> dict[str, str]:
    out = {}
    for name in ("ncnn", "pnnx", "torch", "onnx", "onnxruntime"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise InputError(f"ncnn precision must be one of {PRECISIONS}, got {precision!r}")


# --------------------------------------------------------------------------------------------- from torch


def export_ncnn(model, out_dir: str | os.PathLike, precision: str = "fp32", *, threads: int | None = None,
                name: str | None = None, input_size: tuple[int, int] | None = None) -> NcnnFiles:
    """Trace `model` (a DWPose nn.Module) at batch 1, convert with pnnx, validate against `model`, keep param/bin.

    Returns `(param, bin)` paths (an NcnnFiles tuple with `.agreement` and `.info`). Raises ExportError when
    pnnx fails and ParityError when ncnn disagrees with torch beyond the precision's threshold.
    """
    import torch

    _check_precision(precision)
    spec = getattr(model, "spec", None)
    size = tuple(input_size or getattr(spec, "input_size", ()) or ())
    if len(size) != 2:
        raise InputError("the model has no .spec.input_size; pass input_size=(W, H)")
    size = (int(size[0]), int(size[1]))
    name = name or getattr(spec, "name", None) or "model"
    ref_model = model
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()):
        ref_model = copy.deepcopy(model).float().cpu()
    ref_model = ref_model.eval()

    @torch.inference_mode()
    def reference(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = ref_model(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        return x.float().numpy(), y.float().numpy()

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{name}_{size[1]}x{size[0]}_{precision}"
    with tempfile.TemporaryDirectory(prefix=".pnnx-", dir=out_dir) as tmp:
        tmp = Path(tmp).resolve()
        dummy = torch.randn(1, 3, size[1], size[0], generator=torch.Generator().manual_seed(0))
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            try:
                traced = torch.jit.trace(ref_model, dummy, check_trace=False)
            except Exception as exc:  # tracing errors come in many types
                raise ExportError(f"TorchScript trace of {name} failed: {type(exc).__name__}: {exc}") from exc
            traced.save(str(tmp / "model.pt"))
        param, bin_, _ = _run_pnnx(tmp / "model.pt", size, precision == "fp16", tmp)
        _set_input_shape(param, size)
        agreement, blobs, input_blob = _validate(reference, param, bin_, size, precision,
                                                 f"ncnn/{precision} export of {name}", threads)
        info = {"model": name, "source": "torch", "route": "torch.jit.trace (batch 1) -> pnnx",
                "reference": "torch fp32 (CPU)"}
        return _finish(param, bin_, out_dir, stem, agreement, blobs, input_blob, size, precision, info)


# --------------------------------------------------------------------------------------------- from ONNX


def _const_values(graph) -> dict[str, np.ndarray]:
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
                elif attr.name in ("value_ints", "value_int"):
                    values[node.output[0]] = np.array(attr.ints if attr.name == "value_ints" else attr.i, np.int64)
    return values


def _shapes(proto) -> dict[str, list[int | None]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception:  # shape inference is advisory here
        inferred = proto
    out = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            out[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
    return out


def _default_opset(proto) -> int:
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _attr(node, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _drop_attr(node, name: str) -> None:
    keep = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(keep)


def prepare_onnx_for_pnnx(proto, input_size: tuple[int, int]) -> tuple[Any, list[str]]:
    """Rewrite an ONNX pose model into the form pnnx converts correctly; returns (new proto, notes).

    Fixes the batch to 1 (and H, W to `input_size`), moves opset-18 Reduce axes inputs to attributes at
    opset 17, makes Split's `num_outputs` explicit, and adds the size-1 batch axis to single-axis
    ReduceSum. Every change keeps the ONNX semantics; `onnx_to_ncnn` re-checks with onnxruntime.
    """
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    graph = proto.graph
    notes: list[str] = []
    init_names = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init_names]
    if len(inputs) != 1:
        raise ExportError(f"the ONNX model has {len(inputs)} inputs; a pose model has one (N,3,H,W)")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ExportError(f"the ONNX input has rank {len(dims)}, expected (N,3,H,W)")
    w, h = input_size
    for d, v in zip(dims, (1, 3, h, w)):
        if d.HasField("dim_value") and d.dim_value != v:
            raise ExportError(f"the ONNX input is {[x.dim_value or x.dim_param for x in dims]}, "
                              f"incompatible with (1,3,{h},{w})")
        d.ClearField("dim_param")
        d.dim_value = v
    for out in graph.output:
        odims = out.type.tensor_type.shape.dim
        if odims and not odims[0].HasField("dim_value"):
            odims[0].ClearField("dim_param")
            odims[0].dim_value = 1
    del graph.value_info[:]  # stale symbolic shapes; re-inferred below
    notes.append(f"batch fixed to 1, input (1,3,{h},{w})")

    opset = _default_opset(proto)
    consts = _const_values(graph)
    shapes = _shapes(proto)
    if opset >= 18:
        problems = []
        new_nodes = []
        moved = split_fixed = 0
        dropped: set[str] = set()
        for node in graph.node:
            if node.domain not in ("", "ai.onnx"):
                new_nodes.append(node)
                continue
            op = node.op_type
            try:
                since = onnx.defs.get_schema(op, opset).since_version
            except Exception:
                since = 0
            if since <= 17:
                new_nodes.append(node)
                continue
            if op in REDUCE_AXES_MOVED_IN_18:
                axes_name = node.input[1] if len(node.input) > 1 else ""
                noop = _attr(node, "noop_with_empty_axes", 0)
                _drop_attr(node, "noop_with_empty_axes")
                if axes_name:
                    if axes_name not in consts:
                        problems.append(f"{op} {node.name!r} has computed (non-constant) axes")
                        continue
                    axes = [int(a) for a in np.asarray(consts[axes_name]).reshape(-1)]
                    del node.input[1:]
                    dropped.add(axes_name)
                    moved += 1
                    if axes:
                        node.attribute.append(helper.make_attribute("axes", axes))
                    elif noop:
                        node = helper.make_node("Identity", [node.input[0]], list(node.output), name=node.name)
                elif noop:
                    node = helper.make_node("Identity", [node.input[0]], list(node.output), name=node.name)
                new_nodes.append(node)
            elif op == "Split":
                n = _attr(node, "num_outputs")
                _drop_attr(node, "num_outputs")
                split_fixed += n is not None
                if n is not None and len(node.input) < 2:
                    axis = int(_attr(node, "axis", 0))
                    shape = shapes.get(node.input[0])
                    size = shape[axis] if shape and -len(shape) <= axis < len(shape) else None
                    if size is None:
                        problems.append(f"Split {node.name!r}: num_outputs with an unknown input size")
                        continue
                    if size % n:
                        chunk = -(-size // n)
                        split = [chunk] * (n - 1) + [size - chunk * (n - 1)]
                        sname = f"{node.name or node.output[0]}_split_sizes"
                        graph.initializer.append(numpy_helper.from_array(np.array(split, np.int64), sname))
                        node.input.append(sname)
                new_nodes.append(node)
            elif op in TYPE_ONLY_CHANGES:
                new_nodes.append(node)
            elif op == "Pad" and len(node.input) <= 3 and _attr(node, "mode", b"constant") != b"wrap":
                new_nodes.append(node)
            elif op == "Resize" and not any(a.name in ("antialias", "axes", "keep_aspect_ratio_policy")
                                            for a in node.attribute) \
                    and _attr(node, "coordinate_transformation_mode", b"") != b"half_pixel_symmetric":
                new_nodes.append(node)
            else:
                problems.append(f"{op} (opset {since})")
        if problems:
            raise ExportError("cannot bring this ONNX file to a form pnnx converts correctly: "
                              + "; ".join(sorted(set(problems))) + ". Re-export it with opset 17 "
                              "(torch.onnx.export(..., dynamo=False, opset_version=17)).")
        used = {n for node in new_nodes for n in node.input} | {o.name for o in graph.output}
        unused = dropped - used  # axes tensors that became attributes
        new_nodes = [n for n in new_nodes if not (n.op_type == "Constant" and n.output[0] in unused)]
        for t in [t for t in graph.initializer if t.name in unused]:
            graph.initializer.remove(t)
        del graph.node[:]
        graph.node.extend(new_nodes)
        for o in proto.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = 17
        notes.append(f"opset {opset} -> 17 ({moved} Reduce axes inputs moved to attributes"
                     + (f", {split_fixed} Split num_outputs made explicit" if split_fixed else "") + ")")

    # ReduceSum keeps axes as an input at opset 13-17: a single axis is mis-converted, two are not.
    # Reducing also over a size-1 axis (the batch) is an identity with keepdims=1, and pnnx drops it.
    fixed = 0
    for node in graph.node:
        if node.op_type == "ReduceSum" and len(node.input) > 1 and node.input[1] in consts \
                and int(_attr(node, "keepdims", 1)) == 1:
            axes = [int(a) for a in np.asarray(consts[node.input[1]]).reshape(-1)]
            shape = shapes.get(node.input[0])
            if len(axes) == 1 and shape and shape[0] == 1 and axes[0] not in (0, -len(shape)):
                aname = f"{node.name or node.output[0]}_axes_with_batch"
                graph.initializer.append(numpy_helper.from_array(np.array([0, axes[0]], np.int64), aname))
                node.input[1] = aname
                fixed += 1
    if fixed:
        notes.append(f"{fixed} single-axis ReduceSum also reduce over the size-1 batch axis")
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise ExportError(f"the rewritten ONNX model does not pass onnx.checker: {exc}") from exc
    return proto, notes


def _onnx_input_size(proto, input_size: tuple[int, int] | None, source: str) -> tuple[int, int]:
    init_names = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in init_names]
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]

    return input_size_from_shape(dims, source, tuple(input_size) if input_size else None)


def _name_from_onnx(path: Path) -> str:
    stem = path.stem
    m = re.match(r"^(.*)_\d+x\d+_(fp32|fp16)$", stem)
    return m.group(1) if m else stem


def onnx_to_ncnn(onnx_path: str | os.PathLike, out_dir: str | os.PathLike, precision: str = "fp32", *,
                 threads: int | None = None, name: str | None = None,
                 input_size: tuple[int, int] | None = None) -> NcnnFiles:
    """Convert an official-layout pose ONNX file (input (N,3,H,W), outputs simcc_x/simcc_y) to ncnn.

    The file is rewritten for pnnx (`prepare_onnx_for_pnnx`), the rewrite is checked against the original
    with onnxruntime, converted, and the ncnn model is validated against onnxruntime on the original file.
    `input_size` (W, H) is needed only when the file's H/W are dynamic; `name` defaults to the file's stem.
    """
    _check_precision(precision)
    onnx_path = Path(onnx_path)
    proto = check_onnx_file(onnx_path)
    size = _onnx_input_size(proto, input_size, str(onnx_path))
    name = name or _name_from_onnx(onnx_path)
    reference = OnnxRuntime(onnx_path, threads=threads, input_size=size)
    prepared, notes = prepare_onnx_for_pnnx(proto, size)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{name}_{size[1]}x{size[0]}_{precision}"
    with tempfile.TemporaryDirectory(prefix=".pnnx-", dir=out_dir) as tmp:
        tmp = Path(tmp).resolve()
        src = tmp / "model.onnx"
        onnx.save(prepared, str(src))
        _check_rewrite(reference, src, size)
        param, bin_, _ = _run_pnnx(src, size, precision == "fp16", tmp)
        _set_input_shape(param, size)
        agreement, blobs, input_blob = _validate(reference.infer, param, bin_, size, precision,
                                                 f"ncnn/{precision} conversion of {onnx_path.name}", threads)
        info = {"model": name, "source": onnx_path.name, "route": "ONNX rewrite (" + "; ".join(notes) + ") -> pnnx",
                "reference": "onnxruntime fp32 (CPU) on the source ONNX file"}
        return _finish(param, bin_, out_dir, stem, agreement, blobs, input_blob, size, precision, info)


def _check_rewrite(reference, rewritten: Path, size: tuple[int, int]) -> None:
    """The rewritten file must compute what the original computes (onnxruntime, one random crop)."""
    w, h = size
    x = np.random.default_rng(7).standard_normal((1, 3, h, w)).astype(np.float32)
    want = reference.infer(x)
    try:
        got = OnnxRuntime(rewritten, input_size=size).infer(x)
    except Exception as exc:
        raise ExportError(f"the ONNX rewrite for pnnx does not run in onnxruntime: {exc}") from exc
    for a, b in zip(want, got):
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-4, atol=1e-4 * (1 + float(np.abs(a).max()))):
            raise ExportError("the ONNX rewrite for pnnx changed the model's outputs (max diff "
                              f"{float(np.abs(a - b).max()) if a.shape == b.shape else 'shape'}); please report")


# --------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Export DWPose to ncnn with pnnx (validated).")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="dwpose-t|s|m|l|l-384 (with --weights)")
    src.add_argument("--onnx", help="an official-layout ONNX file to convert (no checkpoint needed)")
    ap.add_argument("--weights", help="mmpose .pth checkpoint, registry name, or 'random'")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--precision", default="fp32", choices=[*PRECISIONS, "both"])
    ap.add_argument("--name", help="file name prefix (default: model name / ONNX stem)")
    ap.add_argument("--input-size", help="WxH, for ONNX files with dynamic H/W")
    ap.add_argument("--threads", type=int)
    args = ap.parse_args(argv)
    precisions = PRECISIONS if args.precision == "both" else (args.precision,)
    size = tuple(int(v) for v in args.input_size.lower().split("x")) if args.input_size else None
    for precision in precisions:
        if args.onnx:
            files = onnx_to_ncnn(args.onnx, args.out, precision, threads=args.threads, name=args.name,
                                 input_size=size)
        else:
            if not args.weights:
                ap.error("--model needs --weights (a checkpoint, a registry name, or 'random')")
            from dwpose_edge.models import load_model  # torch: only for a checkpoint

            files = export_ncnn(load_model(args.model, args.weights), args.out, precision, threads=args.threads,
                                name=args.name)
        a = files.agreement
        print(f"{files.param}\n{files.bin}\n  {precision}: {a.within_1px:.2%} keypoints within 1 px, "
              f"mean {a.mean_px_error:.3f} px, max logit diff {a.max_logit_diff:.3g} over {a.n_crops} crops")


if __name__ == "__main__":
    try:
        main()
    except (ExportError, ModelFileError, InputError) as exc:
        raise SystemExit(f"error: {exc}") from None
