"""The pose JSON ControlNet tools exchange, written from and read back into a PoseResult.

* ComfyUI's `POSE_KEYPOINT` (comfyui_controlnet_aux's DWPose node): a list with one dict per image,
  `{"people": [...], "canvas_height": H, "canvas_width": W}`; each person has flat `[x, y, c, ...]` lists
  in pixels of the image: `pose_keypoints_2d` (18 OpenPose points, the neck the shoulders' midpoint),
  `face_keypoints_2d` (70: DWPose's 68 and the body's right and left eye, as OpenPose's face model),
  `hand_left_keypoints_2d` / `hand_right_keypoints_2d` (21 each). `c` is 1.0 where the score is >= 0.3, and
  the point is written 0, 0, 0 otherwise; a hand or face with no such point is `null`. No feet.
* OpenPose's own JSON (`"version": 1.3`, `person_id`, the `*_3d` lists empty) with the raw scores as `c`.

`pose_result_from_json` reads either (and the older 68-point-face layout of `openpose.to_openpose`), so an
edited pose can be drawn again; `pose_images_from_json` walks a whole document (one image, a POSE_KEYPOINT
list, or `dwpose-edge predict --out` results); `draw_pose_json` / `write_pose_canvases` draw its ControlNet
canvases (`dwpose-edge draw`).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import InputError
from .openpose import (MMPOSE_IDX, OPENPOSE_IDX, SCORE_THRESHOLD, check_size, draw_openpose_points,
                       to_openpose_points)
from .result import PoseResult

OPENPOSE_JSON_VERSION = 1.3
# slices of the OpenPose-ordered 134 points (openpose.to_openpose_points)
BODY, FEET, FACE, LEFT_HAND, RIGHT_HAND = (slice(0, 18), slice(18, 24), slice(24, 92), slice(92, 113),
                                           slice(113, 134))
RIGHT_EYE, LEFT_EYE = 14, 15  # OpenPose body indices; face points 68 and 69 of OpenPose's face model
# field -> (slice of the 134 points, accepted point counts); the face's 70th and 69th points are the eyes
FIELDS = {"pose_keypoints_2d": (BODY, (18,)), "foot_keypoints_2d": (FEET, (6,)), "face_keypoints_2d": (FACE, (70, 68)),
          "hand_left_keypoints_2d": (LEFT_HAND, (21,)), "hand_right_keypoints_2d": (RIGHT_HAND, (21,))}
_THRESHOLD32 = np.float32(SCORE_THRESHOLD)


def _image_size(image_shape: Any) -> tuple[int, int]:
    return check_size(image_shape, "image_shape", "image.shape")


def _flat(points: np.ndarray, conf: np.ndarray) -> list[float]:
    """[x, y, c, ...] as Python floats (float32 values kept exactly, as the ComfyUI node writes them)."""
    return np.concatenate([points, conf[:, None]], axis=1).astype(np.float64).ravel().tolist()


def _comfy_part(points: np.ndarray, scores: np.ndarray, keep_empty: bool) -> list[float] | None:
    shown = scores >= _THRESHOLD32
    if not shown.any() and not keep_empty:
        return None
    flat = np.where(shown[:, None], points, 0.0)
    return _flat(flat, shown.astype(np.float64))


def to_comfyui(result: PoseResult, image_shape: Any, include_body: bool = True, include_hand: bool = True,
               include_face: bool = True) -> dict:
    """One image's dict of ComfyUI's POSE_KEYPOINT list (see the module doc); `image_shape` is the shape (or
    (H, W)) of the image the keypoints are in. The DWPose node always writes every part; `include_*=False`
    blanks a part here: the body as 18 zero points, hands and face as null."""
    h, w = _image_size(image_shape)
    kk, ss = to_openpose_points(result)
    ss = ss.astype(np.float32)
    people = []
    for k, s in zip(kk, ss):
        body = _comfy_part(k[BODY], s[BODY], keep_empty=True)
        face = None
        if include_face and (s[FACE] >= _THRESHOLD32).any():  # null unless one of the 68 is shown; then + the eyes
            eyes = [RIGHT_EYE, LEFT_EYE]
            face = _comfy_part(np.concatenate([k[FACE], k[eyes]]), np.concatenate([s[FACE], s[eyes]]), True)
        left = _comfy_part(k[LEFT_HAND], s[LEFT_HAND], False) if include_hand else None
        right = _comfy_part(k[RIGHT_HAND], s[RIGHT_HAND], False) if include_hand else None
        people.append({"pose_keypoints_2d": body if include_body else [0.0] * 54, "face_keypoints_2d": face,
                       "hand_left_keypoints_2d": left, "hand_right_keypoints_2d": right})
    return {"people": people, "canvas_height": h, "canvas_width": w}


def to_pose_keypoint(results: list[PoseResult], image_shapes: list[Any], **include: bool) -> list[dict]:
    """ComfyUI's POSE_KEYPOINT for several images: one `to_comfyui` dict per (result, image shape)."""
    if len(results) != len(image_shapes):
        raise InputError(f"{len(results)} results but {len(image_shapes)} image shapes; give one shape per result")
    return [to_comfyui(r, shape, **include) for r, shape in zip(results, image_shapes)]


def to_openpose_json(result: PoseResult, image_shape: Any) -> dict:
    """OpenPose's own JSON layout (version 1.3) with every point and its raw score as `c`: 18 body points (the
    neck scored 1 where both shoulders score > 0.3, else 0: DWPose's rule), 70 face points (68 + the body's
    right and left eye), 21 per hand, the 3-D lists empty. `person_id` is [-1], or [track id] for a tracked
    result. `canvas_height` / `canvas_width` (the image's size) are added so the file can be drawn again;
    OpenPose readers ignore them."""
    h, w = _image_size(image_shape)
    kk, ss = to_openpose_points(result)
    ss = ss.astype(np.float32)
    people = []
    for i, (k, s) in enumerate(zip(kk, ss)):
        pid = -1 if result.track_ids is None else int(result.track_ids[i])
        eyes = [RIGHT_EYE, LEFT_EYE]
        face = _flat(np.concatenate([k[FACE], k[eyes]]), np.concatenate([s[FACE], s[eyes]]))
        people.append({"person_id": [pid],
                       "pose_keypoints_2d": _flat(k[BODY], s[BODY]),
                       "face_keypoints_2d": face,
                       "hand_left_keypoints_2d": _flat(k[LEFT_HAND], s[LEFT_HAND]),
                       "hand_right_keypoints_2d": _flat(k[RIGHT_HAND], s[RIGHT_HAND]),
                       "pose_keypoints_3d": [], "face_keypoints_3d": [], "hand_left_keypoints_3d": [],
                       "hand_right_keypoints_3d": []})
    return {"version": OPENPOSE_JSON_VERSION, "people": people, "canvas_height": h, "canvas_width": w}


# --- reading ---------------------------------------------------------------------------------------------------
def _canvas_size(doc: dict, where: str) -> tuple[int, int] | None:
    h, w = doc.get("canvas_height"), doc.get("canvas_width")
    if h is None and w is None:
        return None
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() and v > 0
             for v in (h, w))
    if not ok:
        raise InputError(f"{where}: canvas_height and canvas_width must both be positive integers (pixels), "
                         f"got {h!r} and {w!r}")
    return int(h), int(w)


def _read_part(person: dict, field: str, where: str) -> np.ndarray | None:
    """(n, 3) float64 x, y, c of one field, or None where it is missing, null or empty."""
    values = person.get(field)
    if values is None or (isinstance(values, list) and not values):
        return None
    counts = FIELDS[field][1]
    if not isinstance(values, list):
        raise InputError(f"{where}.{field} must be a flat list [x, y, c, ...], got {type(values).__name__}")
    if len(values) not in [3 * n for n in counts]:
        extra = " (OpenPose BODY_25 is not supported: write the 18-point COCO body)" if len(values) == 75 and \
            field == "pose_keypoints_2d" else ""
        raise InputError(f"{where}.{field} has {len(values)} values; expected "
                         f"{' or '.join(str(3 * n) for n in counts)} ({' or '.join(map(str, counts))} points "
                         f"x, y, c){extra}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise InputError(f"{where}.{field} must hold finite numbers only")
    return np.asarray(values, np.float64).reshape(-1, 3)


def _read_image(doc: Any, where: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int] | None]:
    """OpenPose-ordered (N,134,2) float32 pixels, (N,134) float32 scores (c) and canvas (H, W) or None."""
    if not isinstance(doc, dict) or not isinstance(doc.get("people"), list):
        raise InputError(f"{where} is not a pose JSON: expected an object with a 'people' list (ComfyUI "
                         "POSE_KEYPOINT entry or OpenPose JSON), got "
                         f"{type(doc).__name__}{' with keys ' + str(sorted(doc)[:6]) if isinstance(doc, dict) else ''}")
    canvas = _canvas_size(doc, where)
    n = len(doc["people"])
    points = np.zeros((n, 134, 2), np.float32)
    scores = np.zeros((n, 134), np.float32)
    for i, person in enumerate(doc["people"]):
        here = f"{where}.people[{i}]"
        if not isinstance(person, dict):
            raise InputError(f"{here} must be an object with pose_keypoints_2d etc., got {type(person).__name__}")
        if not any(person.get(f) is not None for f in FIELDS):
            raise InputError(f"{here} has none of {', '.join(FIELDS)}: not a pose JSON person")
        for field, (part, _) in FIELDS.items():
            xyc = _read_part(person, field, here)
            if xyc is not None:
                m = part.stop - part.start
                points[i, part] = xyc[:m, :2]
                scores[i, part] = xyc[:m, 2]
    return points, scores, canvas


def _to_coco_order(points: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `to_openpose_points`: OpenPose order back to the 133 COCO-WholeBody points (neck dropped)."""
    kk, ss = points.copy(), scores.copy()
    kk[:, MMPOSE_IDX], ss[:, MMPOSE_IDX] = points[:, OPENPOSE_IDX], scores[:, OPENPOSE_IDX]
    return np.delete(kk, 17, axis=1), np.delete(ss, 17, axis=1)


def _boxes(points: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """xyxy of each person's points with a score > 0 (zeros for a person with none)."""
    boxes = np.zeros((len(points), 4), np.float32)
    for i, (p, s) in enumerate(zip(points, scores)):
        seen = p[s > 0]
        if len(seen):
            boxes[i] = [*seen.min(axis=0), *seen.max(axis=0)]
    return boxes


def pose_result_from_json(doc: Any) -> tuple[PoseResult, tuple[int, int] | None]:
    """One image's pose JSON (a ComfyUI POSE_KEYPOINT entry, OpenPose's JSON, or `to_openpose`'s) as a
    PoseResult (133 COCO-WholeBody points, pixels; each score is the file's `c`: 1.0/0.0 from ComfyUI, raw
    from OpenPose; absent parts score 0; boxes around the scored points) and its canvas (H, W), None where the
    file has none. The file's neck and face eye points are dropped: `draw_openpose` puts the neck at the
    shoulders' midpoint; `draw_pose_json` draws the file's own neck. InputError for anything else."""
    if isinstance(doc, list):
        if len(doc) != 1:
            raise InputError(f"the JSON holds {len(doc)} images; pose_result_from_json reads one: pass one entry "
                             "or use pose_images_from_json")
        doc = doc[0]
    points, scores, canvas = _read_image(doc, "pose JSON")
    kk, ss = _to_coco_order(points, scores)
    return PoseResult(kk, ss, _boxes(kk, ss)), canvas


def pose_images_from_json(doc: Any) -> list[tuple[str, np.ndarray, np.ndarray, tuple[int, int] | None]]:
    """Every image of a pose JSON document as (name, OpenPose-ordered (N,134,2) points, (N,134) scores, canvas):
    one image's dict, a list of them (ComfyUI's POSE_KEYPOINT, names 0000, 0001...), or the results of
    `dwpose-edge predict --format comfyui|openpose|openpose-json --out` (names from the file stems, frames of a
    video numbered)."""
    if isinstance(doc, dict) and isinstance(doc.get("files"), dict):
        out = []
        for path, entry in doc["files"].items():
            stem = str(path).replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
            if isinstance(entry, list):
                out += [(f"{stem}_{j:05d}", *_read_image(e, f"{path}[{j}]")) for j, e in enumerate(entry)]
            else:
                out.append((stem, *_read_image(entry, str(path))))
        return out
    if isinstance(doc, list):
        if not doc:
            raise InputError("the pose JSON is an empty list: no image to read")
        return [(f"{j:04d}", *_read_image(e, f"pose JSON[{j}]")) for j, e in enumerate(doc)]
    return [("pose", *_read_image(doc, "pose JSON"))]


# --- drawing -----------------------------------------------------------------------------------------------------
def draw_pose_json(doc: Any, canvas_size: tuple[int, int] | None = None, style: str = "annotator",
                   rgb: bool = False) -> list[tuple[str, np.ndarray]]:
    """(name, ControlNet canvas) for every image of a pose JSON document (see `pose_images_from_json`), drawn
    as `openpose.draw_openpose` draws (the file's own neck and points, each drawn where its `c` passes the
    annotator's 0.3 rules) at the file's canvas size, or `canvas_size` (H, W) where the file has none."""
    out = []
    for name, points, scores, canvas in pose_images_from_json(doc):
        size = canvas or canvas_size
        if size is None:
            raise InputError(f"pose JSON image {name!r} has no canvas_height/canvas_width (OpenPose's own files do "
                             "not): give the canvas size (--canvas-size HxW)")
        out.append((name, draw_openpose_points(points, scores, size, style=style, rgb=rgb)))
    return out


def write_pose_canvases(json_path: str | os.PathLike, out: str | os.PathLike, style: str = "annotator",
                        canvas_size: tuple[int, int] | None = None) -> list[Path]:
    """Draw a pose JSON file's canvases as PNGs: `out` is the PNG of a one-image file, else (or when it is an
    existing folder) a folder receiving `<name>.png` per image. Returns the paths written."""
    try:
        doc = json.loads(Path(json_path).read_text())
    except OSError as exc:
        raise InputError(f"cannot read {json_path}: {exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{json_path} is not JSON: {exc}") from None
    canvases = draw_pose_json(doc, canvas_size=canvas_size, style=style)
    target = Path(out)
    if len(canvases) == 1 and target.suffix and not target.is_dir():
        paths = [target]
    elif target.suffix.lower() in (".png", ".jpg", ".jpeg") and not target.is_dir():
        raise InputError(f"{json_path} holds {len(canvases)} images: --out must be a folder, got {out}")
    else:
        paths = [target / f"{name}.png" for name, _ in canvases]
    try:
        paths[0].parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {paths[0].parent}: {exc}") from None
    for path, (_, canvas) in zip(paths, canvases):
        if not cv2.imwrite(str(path), canvas):
            raise InputError(f"cannot write {path} (is the suffix an image format OpenCV writes, e.g. .png?)")
    return paths
