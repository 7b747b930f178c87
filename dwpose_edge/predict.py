"""`dwpose-edge predict`: images, folders and videos in; JSON (COCO-WholeBody or OpenPose) and drawings out."""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .draw import draw
from .errors import InputError
from .openpose import draw_openpose
from .pose_json import to_comfyui, to_openpose_json
from .video import open_source, writable_path

FORMATS = ("coco", "openpose", "comfyui", "openpose-json")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Expand folders (images and videos inside, sorted); every path must exist."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        elif p.is_file():
            paths.append(p)
        else:
            raise InputError(f"input not found: {item}")
    if not paths:
        raise InputError(f"no images or videos found in {inputs}")
    return paths


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot read image {path} (not an image, truncated, or an unsupported format)")
    return image


def run_predict(est, inputs: list[str], out: str | None = None, draw_dir: str | None = None,
                fmt: str = "coco", score_threshold: float = 0.3, progress: bool = True) -> dict:
    """Estimate poses on every input; returns {"files": {...}, "persons": N, "frames": N, "ms_per_frame": t}.

    `fmt`: "coco" (COCO-WholeBody results), "openpose" (`PoseResult.to_openpose`), "comfyui" (one ComfyUI
    POSE_KEYPOINT dict per image, a list per video: `pose_json.to_comfyui`) or "openpose-json" (OpenPose's own
    layout, `pose_json.to_openpose_json`).

    With `draw_dir` and any fmt but "coco", each image also gets `<stem>_openpose.png`: the ControlNet canvas,
    pixel-identical to the DWPose annotator's (`openpose.draw_openpose`); videos get the overlay only.

    Output paths are checked before any work (InputError). A video that stops decoding part-way keeps the
    frames decoded so far, warns (RuntimeWarning) and is listed in summary["incomplete_videos"].
    """
    if fmt not in FORMATS:
        raise InputError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    paths = collect_inputs(inputs)
    out_path = writable_path(out, "--out") if out else None
    draw_path = _writable_dir(draw_dir) if draw_dir else None
    results: dict[str, list] = {}
    incomplete: dict[str, dict] = {}
    persons = frames = 0
    t0 = time.perf_counter()

    def encode(result, image, frame_id):
        if fmt == "coco":
            return result.to_coco(frame_id)
        if fmt == "comfyui":
            return to_comfyui(result, image.shape)
        if fmt == "openpose-json":
            return to_openpose_json(result, image.shape)
        return result.to_openpose(image.shape[:2])

    bar = tqdm(paths, desc="predict", unit="file", disable=not progress or len(paths) < 2)
    for path in bar:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            source = open_source(path)  # InputError when OpenCV cannot decode it
            stream, fps, count = source, source.fps, source.frame_count
            writer = None
            entries = []
            for i, frame in enumerate(tqdm(stream, total=count or None, desc=path.name, unit="frame",
                                           disable=not progress, leave=False)):
                result = est(frame)
                entries.append(encode(result, frame, i))
                persons += len(result)
                frames += 1
                if draw_path:
                    if writer is None:
                        h, w = frame.shape[:2]
                        writer = cv2.VideoWriter(str(draw_path / f"{path.stem}_pose.mp4"),
                                                 cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                    writer.write(draw(frame, result, score_threshold))
            if writer is not None:
                writer.release()
            results[str(path)] = entries
            if count and len(entries) < count:
                incomplete[str(path)] = {"decoded": len(entries), "expected": count}
                warnings.warn(f"video {path}: only {len(entries)} of its {count} frames could be decoded (truncated or "
                              "damaged file); results cover the decoded frames", RuntimeWarning, stacklevel=2)
        else:
            image = read_image(path)
            result = est(image)
            results[str(path)] = encode(result, image, 0)
            persons += len(result)
            frames += 1
            if draw_path:
                cv2.imwrite(str(draw_path / f"{path.stem}_pose.png"), draw(image, result, score_threshold))
                if fmt != "coco":
                    cv2.imwrite(str(draw_path / f"{path.stem}_openpose.png"), draw_openpose(result, image.shape[:2]))
    elapsed = time.perf_counter() - t0
    summary = {"files": results, "persons": persons, "frames": frames,
               "ms_per_frame": round(elapsed * 1000 / max(frames, 1), 2), "format": fmt}
    if incomplete:
        summary["incomplete_videos"] = incomplete
    if out_path:
        try:
            out_path.write_text(json.dumps(summary))
        except OSError as exc:
            raise InputError(f"cannot write results to {out_path}: {exc}") from exc
    return summary


def _writable_dir(draw_dir: str) -> Path:
    path = Path(draw_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the --draw folder {draw_dir}: {exc}") from exc
    return path
