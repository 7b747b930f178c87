"""Export a DWPose model to ONNX in the official layout: input `input` [N,3,H,W], outputs `simcc_x`, `simcc_y`."""
from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from dwpose_edge.errors import ExportError
from dwpose_edge.models import build_model, load_checkpoint
from dwpose_edge.specs import MEAN_RGB, STD_RGB
from dwpose_edge.weights import resolve_weights

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAMES = ("simcc_x", "simcc_y")


def export_onnx(model: nn.Module, path: str | os.PathLike, opset: int = OPSET, dynamic_batch: bool = True,
                simplify: bool = True) -> Path:
    """Trace `model` to ONNX (TorchScript exporter, opset 17), check it, simplify it when onnxsim is installed.

    The TorchScript exporter (`dynamo=False`) is used on purpose: it writes one self-contained
    file at opset 17, the layout of the released DWPose/mmdeploy files.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the folder of {path}: {exc}; choose a writable output path") from exc
    w, h = model.spec.input_size
    model = model.float().eval().cpu()
    dummy = torch.randn(2 if dynamic_batch else 1, 3, h, w, generator=torch.Generator().manual_seed(0))
    axes = {n: {0: "batch"} for n in (INPUT_NAME, *OUTPUT_NAMES)} if dynamic_batch else None
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (dummy,), str(raw), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), dynamic_axes=axes,
                              do_constant_folding=True)
        proto = onnx.load(str(raw))
    if simplify:
        proto = _simplify(proto)
    _add_metadata(proto, model)
    onnx.checker.check_model(proto, full_check=True)
    tmp_path = path.with_suffix(".onnx.tmp")
    try:
        onnx.save(proto, str(tmp_path))
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise ExportError(f"cannot write {path}: {exc}; choose a writable output path with free space") from exc
    return path


def _simplify(proto):
    try:
        import onnxsim
    except ImportError:
        return proto  # optional: the unsimplified graph is equally correct, only a little slower to load
    simplified, ok = onnxsim.simplify(proto)
    if not ok:
        raise ExportError("onnxsim could not verify the simplified graph; export with simplify=False")
    return simplified


def _add_metadata(proto, model: nn.Module) -> None:
    spec = model.spec
    meta = {"dwpose_edge.model": spec.name, "dwpose_edge.input_size": f"{spec.input_size[0]}x{spec.input_size[1]}",
            "dwpose_edge.mean_rgb": ",".join(map(str, MEAN_RGB.tolist())),
            "dwpose_edge.std_rgb": ",".join(map(str, STD_RGB.tolist())), "dwpose_edge.color": "RGB"}
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="dwpose-t")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", required=True, help="output .onnx path")
    ap.add_argument("--no-simplify", action="store_true")
    args = ap.parse_args(argv)

    model = load_checkpoint(build_model(args.model), resolve_weights(args.weights))
    print(export_onnx(model, args.out, simplify=not args.no_simplify))


if __name__ == "__main__":
    main()
