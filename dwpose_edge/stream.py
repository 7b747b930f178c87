"""`dwpose-edge predict CLIP --det-every N`: one video, image sequence, camera or stream URL through the
tracker, results streamed frame by frame to JSON lines and a drawn video as they come."""
from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from tqdm import tqdm

from .errors import InputError
from .smoothing import OneEuroConfig
from .tracking import PoseTracker
from .video import DrawnVideoWriter, JsonLinesWriter, open_source, writable_path


def run_track(est: Any, source: str | int, det_every: int = 10, smoothing: OneEuroConfig | None = None,
              jsonl: str | None = None, draw_video: str | None = None, out: str | None = None, fmt: str = "coco",
              pipeline: bool = True, score_threshold: float = 0.3, max_frames: int | None = None,
              progress: bool = True, **tracker_options: Any) -> dict:
    """Track people through `source` (see `video.open_source`) with `est` and its detector every `det_every`
    frames; returns {"source", "frames", "persons", "tracks", "median_track_length", "frames_per_s",
    "ms_per_frame", "format"}.

    `jsonl`: one line per frame, flushed (readable while a stream runs); `draw_video`: skeletons, track ids
    and frames/s; `out`: the single JSON of `run_predict` ({"files": {source: [per-frame entries]}, ...},
    kept in memory: for finite clips). Output paths are checked before the source is opened. Ctrl-C on a
    live source ends the run cleanly (files closed, summary returned). `max_frames` stops early.
    """
    if fmt not in ("coco", "openpose"):
        raise InputError(f"format must be coco or openpose, got {fmt!r}")
    out_path = writable_path(out, "--out") if out else None
    if draw_video:
        writable_path(draw_video, "--draw-video")
    src = open_source(source)
    tracker = PoseTracker(est, det_every=det_every, smoothing=smoothing, fps=src.fps, **tracker_options)
    lines = JsonLinesWriter(jsonl, fmt) if jsonl else None
    video = DrawnVideoWriter(draw_video, src.fps, score_threshold) if draw_video else None
    entries: list = []
    lengths: dict[int, int] = {}
    frames = persons = 0
    bar = _progress(src, progress)
    t0 = last = time.perf_counter()
    rate = None
    tracked = tracker.track(src, pipeline=pipeline)
    try:
        for frame, result in tracked:
            now = time.perf_counter()
            rate = 1 / max(now - last, 1e-9) if rate is None else 0.9 * rate + 0.1 / max(now - last, 1e-9)
            last = now
            time_s = frames / src.fps
            if lines is not None:
                lines.write(frames, result, frame.shape, time_s)
            if video is not None:
                video.write(frame, result, rate)
            if out_path is not None:
                entries.append(result.to_coco(frames) if fmt == "coco" else result.to_openpose(frame.shape[:2]))
            for tid in result.track_ids.tolist():
                lengths[tid] = lengths.get(tid, 0) + 1
            persons += len(result)
            frames += 1
            if bar is not None:
                bar.update(1)
            if max_frames is not None and frames >= max_frames:
                break
    except KeyboardInterrupt:
        if not src.live:
            raise
    finally:
        tracked.close()  # stops and joins the prefetch thread before the capture is released
        src.close()
        for closer in (lines, video, bar):
            if closer is not None:
                closer.close()
    elapsed = time.perf_counter() - t0
    summary = {"source": src.name, "frames": frames, "persons": persons, "tracks": len(lengths),
               "median_track_length": float(np.median(list(lengths.values()))) if lengths else 0.0,
               "frames_per_s": round(frames / max(elapsed, 1e-9), 2),
               "ms_per_frame": round(elapsed * 1000 / max(frames, 1), 2), "format": fmt, "det_every": det_every}
    if out_path is not None:
        try:
            out_path.write_text(json.dumps({**summary, "files": {src.name: entries}}))
        except OSError as exc:
            raise InputError(f"cannot write results to {out_path}: {exc}") from exc
    return summary


def _progress(src: Any, enabled: bool) -> Any:
    if not enabled:
        return None
    return tqdm(total=src.frame_count or None, desc=src.name, unit="frame", leave=False)
