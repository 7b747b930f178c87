"""Video in and out for tracking: frame sources (video files, image sequences and folders, camera indices,
stream URLs, all read through OpenCV) and writers (a drawn video with skeletons, track ids and frames/s;
JSON lines, one per frame, flushed so that the file can be read while the stream runs)."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from .draw import draw
from .errors import InputError
from .result import PoseResult

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt", "file")
DEFAULT_FPS = 25.0


class FrameSource:
    """BGR frames of one source, iterated once; `fps` (the source's, else 25 or the given one),
    `frame_count` (0 when unknown, e.g. a camera), `live` (camera or network stream)."""

    def __init__(self, name: str, frames: Iterator[np.ndarray], fps: float, frame_count: int, live: bool,
                 release: Any = None) -> None:
        self.name, self.fps, self.frame_count, self.live = name, float(fps), int(frame_count), live
        self._frames, self._release = frames, release

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._frames

    def close(self) -> None:
        """Release the capture (also done when the frames run out)."""
        if self._release is not None:
            self._release()
            self._release = None

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def source_kind(source: str | int) -> str:
    """'camera', 'stream', 'sequence' (printf pattern such as frames/%06d.png), 'folder', 'image' or 'video'."""
    if isinstance(source, (int, np.integer)) or (isinstance(source, str) and source.strip().isdigit()):
        return "camera"
    text = os.fspath(source)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in STREAM_SCHEMES:
        return "stream"
    if "%" in Path(text).name:
        return "sequence"
    path = Path(text)
    if path.is_dir():
        return "folder"
    return "image" if path.suffix.lower() in IMAGE_SUFFIXES else "video"


def open_source(source: str | int | os.PathLike, fps: float | None = None) -> FrameSource:
    """Open a video file, an image sequence pattern (`frames/%06d.png`), a folder of images (sorted by
    name), a camera index (`0`) or a stream URL (rtsp://, http://, file://...). The first frame is read
    here, so a source that cannot be opened or decoded fails now with an InputError saying why.
    `fps` overrides the source's frame rate (image sequences and folders have none: 25)."""
    src: str | int = source if isinstance(source, (int, np.integer)) else os.fspath(source)
    kind = source_kind(src)
    if kind == "camera":
        index = int(src)
        return _capture(cv2.VideoCapture(index), f"camera {index}", fps, live=True,
                        hint="no such camera, or it is busy or not permitted; pass another index, a video file or "
                             "a stream URL")
    if kind == "stream":
        return _capture(cv2.VideoCapture(str(src), cv2.CAP_FFMPEG), str(src), fps, live=True,
                        hint="OpenCV's FFmpeg backend could not connect to it or decode it; check the address "
                             "(and that the server is up) or play it with ffplay first")
    if kind == "sequence":
        if not Path(str(src)).parent.is_dir():
            raise InputError(f"input not found: the folder of the image sequence {src} does not exist")
        return _capture(cv2.VideoCapture(str(src), cv2.CAP_IMAGES), str(src), fps or DEFAULT_FPS, live=False,
                        hint="no image matches the pattern from its first number (patterns start at 0 or 1, "
                             "e.g. frames/%06d.png)")
    path = Path(str(src))
    if not path.exists():
        raise InputError(f"input not found: {src} (give a video, an image folder, a pattern such as "
                         "frames/%06d.png, a camera index or a stream URL)")
    if kind == "folder":
        return _folder(path, fps or DEFAULT_FPS)
    if kind == "image":
        return _folder(path, fps or DEFAULT_FPS, files=[path])
    return _capture(cv2.VideoCapture(str(path)), str(path), fps, live=False,
                    hint="a corrupt file or a codec OpenCV lacks", verb="decode video")


def _capture(cap: cv2.VideoCapture, name: str, fps: float | None, live: bool, hint: str,
             verb: str = "read") -> FrameSource:
    ok, first = cap.read() if cap.isOpened() else (False, None)
    if not ok or first is None:
        cap.release()
        raise InputError(f"cannot open or {verb} {name}: {hint}")
    rate = fps or cap.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
    count = 0 if live else max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)

    def frames() -> Iterator[np.ndarray]:
        try:
            yield first
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                yield frame
        finally:
            cap.release()

    return FrameSource(name, frames(), rate if 0 < rate < 1000 else DEFAULT_FPS, count, live, cap.release)


def _folder(path: Path, fps: float, files: list[Path] | None = None) -> FrameSource:
    files = files or sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"no images in the folder {path} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")

    def frames() -> Iterator[np.ndarray]:
        for f in files:
            image = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if image is None:
                raise InputError(f"cannot read image {f} (not an image, truncated, or an unsupported format)")
            yield image

    return FrameSource(str(path), frames(), fps, len(files), live=False)


def writable_path(path: str | os.PathLike, flag: str) -> Path:
    """Check before any work that a file can be written at `path` (its folder is created)."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{flag} {path} is a folder; give a file name")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder of {flag} {path}: {exc}") from exc
    if not os.access(p.parent, os.W_OK):
        raise InputError(f"cannot write {flag} {path}: its folder is not writable")
    return p


class JsonLinesWriter:
    """One JSON object per frame and line, flushed at once: `{"frame": i, "time": s, "persons": [...]}` with
    COCO-WholeBody entries (fmt 'coco', each with its `track_id`), or `{"frame": i, "time": s, "people":
    [...], "canvas_height": h, "canvas_width": w}` (fmt 'openpose')."""

    def __init__(self, path: str | os.PathLike, fmt: str = "coco") -> None:
        if fmt not in ("coco", "openpose"):
            raise InputError(f"format must be coco or openpose, got {fmt!r}")
        self.path, self.fmt = writable_path(path, "--jsonl"), fmt
        self._file: IO[str] | None = open(self.path, "w", encoding="utf-8")

    def write(self, index: int, result: PoseResult, image_shape: tuple[int, ...], time_s: float) -> None:
        if self._file is None:
            raise InputError(f"{self.path} is closed")
        line: dict = {"frame": int(index), "time": round(float(time_s), 4)}
        if self.fmt == "coco":
            line["persons"] = result.to_coco(index)
        else:
            line.update(result.to_openpose(image_shape[:2]))
        self._file.write(json.dumps(line, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "JsonLinesWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track_color(track_id: int) -> tuple[int, int, int]:
    """A distinct BGR colour per track id (golden-angle hue steps)."""
    hue = int(track_id * 137.508) % 180
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw_tracked(image: np.ndarray, result: PoseResult, score_threshold: float = 0.3,
                 fps: float | None = None) -> np.ndarray:
    """`draw.draw` plus each person's track id above its box (a colour per id) and the frames/s in a corner."""
    canvas = draw(image, result, score_threshold, draw_boxes=True)
    size = max(canvas.shape[:2])
    scale, thick = max(0.4, size / 1600), max(1, size // 500)
    if result.track_ids is not None:
        for box, tid in zip(result.boxes, result.track_ids):
            x, y = int(round(float(box[0]))), int(round(float(box[1])))
            cv2.putText(canvas, f"#{int(tid)}", (max(x, 0), max(y - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        track_color(int(tid)), thick + 1, cv2.LINE_AA)
    if fps is not None:
        cv2.putText(canvas, f"{fps:.1f} fps", (8, int(24 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thick + 1, cv2.LINE_AA)
    return canvas


class DrawnVideoWriter:
    """An MP4 (mp4v; or .avi: MJPG) of the frames with skeletons, track ids and the processing frames/s."""

    def __init__(self, path: str | os.PathLike, fps: float, score_threshold: float = 0.3) -> None:
        self.path = writable_path(path, "--draw-video")
        self.fps, self.score_threshold = float(fps), score_threshold
        self._writer: cv2.VideoWriter | None = None

    def write(self, image: np.ndarray, result: PoseResult, fps_now: float | None = None) -> None:
        if self._writer is None:
            h, w = image.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                raise InputError(f"cannot write the video {self.path}: OpenCV has no encoder for "
                                 f"'{self.path.suffix}'; use .mp4 or .avi")
        self._writer.write(draw_tracked(image, result, self.score_threshold, fps_now))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> "DrawnVideoWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
