"""Pack a trained checkpoint as the package's embedded default: fp16 weights, mmpose layout, sha256.

    python -m dwpose_edge.train.embed runs/tpd_t_stage2/final.pth --model dwpose-t \
        --out dwpose_edge/data/dwpose-t_synth_fp16.pth --val-ann ... --val-images ...

Floating-point tensors are stored in float16 (half the size; `load_checkpoint` casts them back to
float32), integer buffers unchanged. With `--val-ann` the AP of the source and of the fp16 file are
both measured, so the rounding cost is on record. The fp16 file's AP on the embedded validation set
is stored in its meta (`embedded_val_ap`), where the tests re-measure it. Prints the `EMBEDDED` entry to paste into
dwpose_edge/embedded.py.

`--onnx OUT.onnx` also writes the same weights as the validated ONNX that runs without PyTorch (the
default of every non-torch runtime): exported from the fp16 file (weights cast back to float32), checked
against torch fp32 on the validation crops at the fp32 gate, with the checkpoint's meta in its
metadata_props (`dwpose_edge.meta`).

    python -m dwpose_edge.train.embed --onnx-only dwpose_edge/data/dwpose-t_synth_fp16.pth --model dwpose-t \
        --onnx dwpose_edge/data/dwpose-t_synth.onnx
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import onnx
import torch

from dwpose_edge import Estimator
from dwpose_edge.embedded import embedded_val_set
from dwpose_edge.evaluation.metric import evaluate_estimator
from dwpose_edge.export.to_onnx import export_onnx
from dwpose_edge.export.validate import validate, validation_crops
from dwpose_edge.hashing import sha256_file
from dwpose_edge.models import build_model, load_checkpoint
from dwpose_edge.runtimes.onnxruntime_runtime import OnnxRuntime
from dwpose_edge.runtimes.torch_runtime import TorchRuntime

META_KEY = "dwpose_edge.meta"


def pack_fp16(src: str | os.PathLike, dst: str | os.PathLike, model: str,
              provenance: dict[str, Any] | None = None) -> str:
    """Write `src` (any checkpoint `load_checkpoint` reads) as an fp16 mmpose checkpoint; returns its sha256."""
    net = load_checkpoint(build_model(model), src)  # strict: the file must fit `model`
    state = {k: (v.half() if v.is_floating_point() else v).clone() for k, v in net.state_dict().items()}
    meta = {"model": model, "dtype": "float16", "dataset_meta": {"dataset_name": "coco_wholebody"},
            "source_sha256": sha256_file(src), **(provenance or {})}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    torch.save({"meta": meta, "state_dict": state}, tmp)
    os.replace(tmp, dst)
    return sha256_file(dst)


def write_onnx(packed: str | os.PathLike, dst: str | os.PathLike, model: str) -> tuple[str, dict]:
    """Export the packed checkpoint `packed` as ONNX at `dst` with its meta, validated against torch fp32 on
    the validation crops (ParityError if it disagrees); returns (sha256, agreement figures)."""
    net = load_checkpoint(build_model(model), packed).eval()
    meta = torch.load(packed, map_location="cpu", weights_only=True)["meta"]
    dst = Path(dst)
    tmp = dst.with_suffix(".tmp.onnx")
    export_onnx(net, tmp)
    proto = onnx.load(str(tmp))
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta, sort_keys=True)
    onnx.save(proto, str(tmp))
    crops = validation_crops(net.spec.input_size)
    agreement = validate(TorchRuntime(net, threads=1).infer,
                         OnnxRuntime(tmp, threads=1, input_size=net.spec.input_size).infer, crops, "fp32",
                         f"embedded {model} ONNX")
    os.replace(tmp, dst)
    return sha256_file(dst), agreement.as_dict()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--model", default="dwpose-t")
    p.add_argument("--out", default=None, help="the packed fp16 .pth to write (not with --onnx-only)")
    p.add_argument("--val-ann", default=None)
    p.add_argument("--val-images", default=None)
    p.add_argument("--note", default=None, help="free text stored in meta (what it was trained on, how)")
    p.add_argument("--onnx", default=None, help="also write the validated ONNX of the packed file here")
    p.add_argument("--onnx-only", action="store_true", help="CHECKPOINT is already packed: only write --onnx")
    args = p.parse_args(argv)
    if args.onnx_only:
        if not args.onnx:
            p.error("--onnx-only needs --onnx OUT.onnx")
        sha, figures = write_onnx(args.checkpoint, args.onnx, args.model)
        print(json.dumps(figures))
        print(f'{args.onnx}: {Path(args.onnx).stat().st_size / 2**20:.1f} MB, sha256 {sha}')
        return 0
    if not args.out:
        p.error("--out is required (the packed fp16 .pth)")

    def ap(weights: str, ann: str | os.PathLike, images: str | os.PathLike) -> dict[str, float]:
        res = evaluate_estimator(Estimator(args.model, weights=weights, runtime="torch", threads=1), ann, images,
                                 progress=False)
        return {part: round(v["AP"], 4) for part, v in res.items()}

    provenance: dict[str, Any] = {"note": args.note} if args.note else {}
    results = {}
    if args.val_ann:
        results["source"] = ap(args.checkpoint, args.val_ann, args.val_images)
    pack_fp16(args.checkpoint, args.out, args.model, provenance)
    # the fp16 file's AP on the embedded set goes into its meta: tests/test_embedded.py re-measures it
    provenance["embedded_val_ap"] = results["fp16_file_embedded_val"] = ap(args.out, *embedded_val_set())
    sha = pack_fp16(args.checkpoint, args.out, args.model, provenance)
    if args.val_ann:
        results["fp16_file"] = ap(args.out, args.val_ann, args.val_images)
    print(json.dumps(results, indent=1))
    size = Path(args.out).stat().st_size / 2**20
    print(f"{args.out}: {size:.1f} MB, sha256 {sha}")
    print(f'EMBEDDED entry: "{args.model}": ("{Path(args.out).name}", "{sha}")')
    if args.onnx:
        onnx_sha, figures = write_onnx(args.out, args.onnx, args.model)
        print(json.dumps(figures))
        print(f'EMBEDDED onnx: ("{Path(args.onnx).name}", "{onnx_sha}")')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
