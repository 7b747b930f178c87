"""`dwpose-edge predict`'s video tracking options (--det-every, --smooth..., --jsonl, --draw-video) and their run."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .errors import InputError
from .smoothing import OneEuroConfig
from .stream import run_track


def add_track_args(p: argparse.ArgumentParser) -> None:
    """Add the tracking options to the predict parser."""
    g = p.add_argument_group("video tracking (one video, image sequence such as frames/%06d.png, image folder, "
                             "camera index or stream URL)")
    g.add_argument("--det-every", dest="det_every", type=int, default=None, metavar="N",
                   help="track people: run the detector every N frames (1 = every frame), take boxes from the "
                        "previous frame's keypoints in between; every person gets a track_id")
    g.add_argument("--smooth", action="store_true", help="smooth keypoints per track (One-Euro filter)")
    g.add_argument("--smooth-min-cutoff", dest="smooth_min_cutoff", type=float, default=OneEuroConfig.min_cutoff,
                   metavar="HZ",
                   help="One-Euro cutoff at rest in Hz: lower = smoother (default: %(default)s)")
    g.add_argument("--smooth-beta", dest="smooth_beta", type=float, default=OneEuroConfig.beta, metavar="B",
                   help="One-Euro speed coefficient in s/px: higher = less lag on fast moves (default: %(default)s)")
    g.add_argument("--smooth-d-cutoff", dest="smooth_d_cutoff", type=float, default=OneEuroConfig.d_cutoff,
                   metavar="HZ",
                   help="One-Euro cutoff of the speed estimate in Hz (default: %(default)s)")
    g.add_argument("--jsonl", default=None, metavar="FILE",
                   help="write one JSON line per frame here, flushed as it goes (readable while a stream runs)")
    g.add_argument("--draw-video", dest="draw_video", default=None, metavar="FILE",
                   help="write the video with skeletons, track ids and frames/s here (.mp4 or .avi)")
    g.add_argument("--no-pipeline", dest="no_pipeline", action="store_true",
                   help="decode and detect in the same thread as pose estimation (default: a second thread "
                        "decodes and detects the next frame meanwhile)")


def wants_tracking(args: argparse.Namespace) -> bool:
    return args.det_every is not None or bool(args.jsonl) or bool(args.draw_video)


def run_tracking(args: argparse.Namespace, est: Any) -> int:
    """Track the one input of `predict`; prints a summary line."""
    if len(args.inputs) != 1:
        raise InputError(f"tracking (--det-every, --jsonl, --draw-video) takes one video, image sequence, folder, "
                         f"camera or stream at a time, got {len(args.inputs)}; run predict once per clip")
    smoothing = (OneEuroConfig(args.smooth_min_cutoff, args.smooth_beta, args.smooth_d_cutoff)
                 if args.smooth else None)
    draw_video = args.draw_video
    if draw_video is None and args.draw:  # --draw FOLDER: <name>_pose.mp4 as predict names its drawn videos
        name = Path(str(args.inputs[0]).rstrip("/")).stem.replace("%", "") or "stream"
        draw_video = str(Path(args.draw) / f"{name}_pose.mp4")
    summary = run_track(est, args.inputs[0], det_every=args.det_every or 1, smoothing=smoothing, jsonl=args.jsonl,
                        draw_video=draw_video, out=args.out, fmt=args.format, pipeline=not args.no_pipeline)
    print(f"{summary['frames']} frame(s), {summary['persons']} person(s) in {summary['tracks']} track(s) "
          f"(median {summary['median_track_length']:.0f} frames), {summary['frames_per_s']:.1f} frames/s "
          f"with detection every {summary['det_every']} frame(s)")
    return 0
