"""`dwpose-edge make-data`: generate a procedural COCO-WholeBody data set."""
from __future__ import annotations

import argparse
import time

from dwpose_edge.errors import DwposeEdgeError


def _size(text: str) -> tuple[int, int]:
    parts = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2 and parts[0] <= parts[1]:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"--size wants N or LO,HI (LO <= HI), got {text!r}")


def cmd_make_data(args: argparse.Namespace) -> int:
    from .synth import make_dataset

    if args.images < 1:
        raise DwposeEdgeError("--images must be at least 1")
    t0 = time.perf_counter()
    try:
        path = make_dataset(args.out, args.images, seed=args.seed, image_size=args.size, workers=args.workers,
                            progress=not args.quiet, difficulty=args.difficulty)
    except ValueError as exc:
        raise DwposeEdgeError(str(exc)) from exc
    dt = time.perf_counter() - t0
    print(f"{args.images} images in {dt:.1f} s ({args.images / dt:.1f} img/s) -> {path}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `make-data` on the main CLI's subparsers."""
    p = subparsers.add_parser("make-data", help="generate procedural COCO-WholeBody images + annotations")
    p.add_argument("--out", required=True, help="output folder (images/ and annotations.json)")
    p.add_argument("--images", type=int, default=1000, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="data set seed (same seed -> identical files)")
    p.add_argument("--size", type=_size, default=(320, 640), help="image side in pixels: N, or LO,HI range")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--difficulty", choices=("standard", "easy"), default="standard",
                   help="easy: one unoccluded person per image, no clutter (a from-scratch curriculum)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_make_data)
    return p
