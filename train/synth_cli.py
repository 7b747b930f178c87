"""`dwpose-edge make-data`: generate a procedural COCO-WholeBody data set."""
from __future__ import annotations

import argparse
import time

from dwpose_edge.errors import DwposeEdgeError
from dwpose_edge.train.synth.clip import render_clip, write_clip
from dwpose_edge.train.synth import make_dataset


def _size(text: str) -> tuple[int, int]:
    parts = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2 and parts[0] <= parts[1]:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"--size wants N or LO,HI (LO <= HI), got {text!r}")


def _clip_size(text: str) -> tuple[int, int]:
    parts = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    if len(parts) != 2 or min(parts) < 64:
        raise argparse.ArgumentTypeError(f"--clip-size wants WIDTHxHEIGHT, each >= 64, got {text!r}")
    return parts[0], parts[1]


def make_clip(args: argparse.Namespace) -> int:
    """`make-data --clip N`: a generated video with known identities (train/synth/clip.py)."""
    if args.clip < 1 or args.people < 1:
        raise DwposeEdgeError("--clip and --people must be at least 1")
    t0 = time.perf_counter()
    path = write_clip(render_clip(args.seed, args.clip, args.clip_size, args.people), args.out)
    print(f"{args.clip} frames of {args.people} walking people in {time.perf_counter() - t0:.1f} s -> {path} "
          f"(frames: {path.parent / 'frames'}/%06d.png)")
    return 0


def cmd_make_data(args: argparse.Namespace) -> int:
    if args.clip is not None:
        return make_clip(args)
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
    p.add_argument("--clip", type=int, default=None, metavar="FRAMES",
                   help="instead of images: a video of FRAMES frames, people walking across a background with "
                        "known identities (frames/%%06d.png + clip.json with 133 keypoints per person and frame)")
    p.add_argument("--people", type=int, default=3, help="--clip: number of people (default: %(default)s)")
    p.add_argument("--clip-size", dest="clip_size", type=_clip_size, default=(480, 320),
                   help="--clip: WIDTHxHEIGHT (default: 480x320)")
    p.set_defaults(func=cmd_make_data)
    return p
