"""OpenPose JSON and the ControlNet canvas; the canvas is checked pixel for pixel against the real DWPose annotator
(controlnet_aux's `dwpose` drawing code, downloaded once from PyPI and cached) on real photos and edge cases."""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import types
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from dwpose_edge import Estimator
from dwpose_edge.data import DATA_DIR
from dwpose_edge.errors import DwposeEdgeError
from dwpose_edge.openpose import draw_openpose, to_openpose, to_openpose_points
from dwpose_edge.result import PoseResult


def person(seed=0):
    rng = np.random.default_rng(seed)
    k = rng.uniform(10, 90, (1, 133, 2)).astype(np.float32)
    s = np.full((1, 133), 0.9, np.float32)
    return PoseResult(k, s, np.array([[0, 0, 100, 100]], np.float32))


def test_neck_and_index_mapping():
    r = person()
    kk, ss = to_openpose_points(r)
    k = r.keypoints[0]
    assert kk.shape == (1, 134, 2)
    np.testing.assert_allclose(kk[0, 1], (k[5] + k[6]) / 2)       # neck
    np.testing.assert_allclose(kk[0, 0], k[0])                      # nose stays
    np.testing.assert_allclose(kk[0, 2], k[6])                      # OpenPose 2 = right shoulder = COCO 6
    np.testing.assert_allclose(kk[0, 5], k[5])                      # OpenPose 5 = left shoulder = COCO 5
    np.testing.assert_allclose(kk[0, 4], k[10])                     # right wrist
    np.testing.assert_allclose(kk[0, 8], k[12])                     # right hip
    np.testing.assert_allclose(kk[0, 14], k[2])                     # right eye
    np.testing.assert_allclose(kk[0, 17], k[3])                     # left ear
    np.testing.assert_allclose(kk[0, 18:24], k[17:23])              # feet shift by one
    np.testing.assert_allclose(kk[0, 92:113], k[91:112])            # left hand
    assert ss[0, 1] == 1.0


def test_json_layout_zeroes_low_scores():
    r = person()
    r.scores[0, 6] = 0.1  # right shoulder missing -> neck missing too
    doc = to_openpose(r, (100, 120))
    assert doc["canvas_height"] == 100 and doc["canvas_width"] == 120
    p = doc["people"][0]
    assert len(p["pose_keypoints_2d"]) == 54 and len(p["face_keypoints_2d"]) == 204
    assert len(p["hand_left_keypoints_2d"]) == 63 and len(p["hand_right_keypoints_2d"]) == 63
    assert p["pose_keypoints_2d"][3:9] == [0.0] * 6  # neck and right shoulder
    assert p["pose_keypoints_2d"][15:18] == [round(float(r.keypoints[0, 5, 0]), 3),
                                            round(float(r.keypoints[0, 5, 1]), 3), round(float(np.float32(0.9)), 3)]


def test_draw_openpose_draws_only_confident_points():
    r = person()
    canvas = draw_openpose(r, (100, 100))
    assert canvas.shape == (100, 100, 3) and canvas.any()
    r.scores[:] = 0.0
    assert not draw_openpose(r, (100, 100)).any()


def test_to_coco_fields_and_method():
    r = person()
    entries = r.to_coco(7)
    e = entries[0]
    assert e["image_id"] == 7 and e["category_id"] == 1 and len(e["keypoints"]) == 51
    assert len(e["foot_kpts"]) == 18 and len(e["face_kpts"]) == 204 and len(e["righthand_kpts"]) == 63
    assert e["lefthand_kpts"][:2] == [round(float(r.keypoints[0, 91, 0]), 3), round(float(r.keypoints[0, 91, 1]), 3)]
    assert e["bbox"] == [0.0, 0.0, 100.0, 100.0] and abs(e["score"] - 0.9) < 1e-6
    assert r.to_openpose((100, 100)) == to_openpose(r, (100, 100))


# --- The ControlNet canvas against the DWPose annotator ---------------------------------------------------------
# ControlNet's OpenPose/DWPose models were trained on canvases drawn by controlnet_aux's `dwpose` module (the same
# drawing as DWPose's own ControlNet code). The reference below is that real code: `dwpose/util.py` loaded
# standalone from the released wheel (numpy, cv2, matplotlib), and `draw_pose` taken from its `dwpose/__init__.py`.
# What DWposeDetector does before drawing (neck, OpenPose order, normalisation, the 0.3 rules) is restated in
# `annotator_canvas` from that code, without calling ours.
CONTROLNET_AUX = "controlnet-aux==0.0.10"
CONTROLNET_AUX_SHA256 = "cad3480d62c7df1ae569258a659c88d730873323d2adbb9f6f7aebd87917df3b"
AUX_DIR = Path(os.environ.get("DWPOSE_EDGE_CONTROLNET_AUX_DIR",
                              Path.home() / ".cache" / "dwpose_edge" / "controlnet_aux-0.0.10"))
OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")
# Real photos and person boxes (x1, y1, x2, y2); the opencv-doc ones are used where Debian's opencv-doc is installed.
PHOTOS = {DATA_DIR / "grace_hopper.jpg": [[60, 20, 470, 600], [120, 40, 400, 330]],
          DATA_DIR / "astronaut.jpg": [[0, 0, 512, 512], [100, 0, 450, 300]],
          OPENCV_DOC / "messi5.jpg": [[68, 57, 462, 335]],
          OPENCV_DOC / "basketball1.png": [[20, 70, 200, 480], [430, 10, 640, 480]],
          OPENCV_DOC / "basketball2.png": [[20, 70, 200, 480], [420, 10, 640, 480]]}
MMPOSE_TO_OPENPOSE = ([17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3],
                      [1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17])


def _require_reference() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def fetch_wheel_files(dest: Path, members: dict[str, str]) -> None:
    """Download the controlnet_aux wheel once (pip, no install), check its sha256, and keep the given members
    (file name in `dest` -> path in the wheel); `dest` appears whole or not at all."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                               CONTROLNET_AUX, "-d", tmp], capture_output=True, text=True, timeout=600)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            reason = (proc.stderr.strip().splitlines() or ["pip gave no wheel"])[-1]
            if _require_reference():
                pytest.fail(f"cannot download {CONTROLNET_AUX} (the DWPose annotator reference): {reason}")
            pytest.skip(f"{CONTROLNET_AUX} (the DWPose annotator reference) cannot be downloaded: {reason}; "
                        "set CI=true to make this a failure")
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        assert digest == CONTROLNET_AUX_SHA256, f"{wheels[0].name} sha256 {digest} is not the audited wheel's"
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=dest.parent))
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name, member in members.items():
                (staging / name).write_bytes(wheel.read(member))
        try:
            staging.rename(dest)
        except OSError:  # another session cached it first
            shutil.rmtree(staging, ignore_errors=True)


@pytest.fixture(scope="module")
def annotator() -> types.SimpleNamespace:
    """controlnet_aux's dwpose `util` module and its `draw_pose(pose, H, W)` (RGB canvas)."""
    pytest.importorskip("matplotlib", reason="the annotator's draw_handpose needs matplotlib")
    if not (AUX_DIR / "util.py").exists():
        fetch_wheel_files(AUX_DIR, {n: f"controlnet_aux/dwpose/{n}" for n in ("util.py", "__init__.py")})
    spec = importlib.util.spec_from_file_location("controlnet_aux_dwpose_util", AUX_DIR / "util.py")
    util = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(util)
    init = ast.parse((AUX_DIR / "__init__.py").read_text())
    fn = next(node for node in init.body if isinstance(node, ast.FunctionDef) and node.name == "draw_pose")
    namespace = {"np": np, "util": util}
    exec(compile(ast.Module([fn], type_ignores=[]), str(AUX_DIR / "__init__.py"), "exec"), namespace)
    return types.SimpleNamespace(util=util, draw_pose=namespace["draw_pose"])


def annotator_canvas(annotator, result: PoseResult, h: int, w: int) -> np.ndarray:
    """RGB canvas the DWPose annotator draws for these 133-point keypoints on an (h, w) image.

    As controlnet_aux's Wholebody + DWposeDetector: neck = shoulders' mean, score 1 if both > 0.3; mmpose -> OpenPose
    order; x/W, y/H; body subset = the candidate's row index where score > 0.3, else -1; every point scoring < 0.3
    becomes (-1, -1); hands = all left hands then all right hands.
    """
    info = np.concatenate([result.keypoints, result.scores[..., None]], axis=-1).astype(np.float32)
    neck = info[:, [5, 6]].mean(axis=1)
    neck[:, 2] = np.logical_and(info[:, 5, 2] > 0.3, info[:, 6, 2] > 0.3)
    info = np.insert(info, 17, neck, axis=1)
    src, dst = MMPOSE_TO_OPENPOSE
    info[:, dst] = info[:, src]
    cand, score = info[..., :2].copy(), info[..., 2].copy()
    n = len(cand)
    cand[..., 0] /= float(w)
    cand[..., 1] /= float(h)
    body = cand[:, :18].copy().reshape(n * 18, 2)
    subset = np.where(score[:, :18] > 0.3, np.arange(n * 18).reshape(n, 18), -1)
    cand[score < 0.3] = -1
    pose = {"bodies": {"candidate": body, "subset": subset}, "faces": cand[:, 24:92],
            "hands": np.vstack([cand[:, 92:113], cand[:, 113:]])}
    return annotator.draw_pose(pose, h, w)


def drawn_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of the non-black pixels of two canvases (the issue's measure)."""
    ma, mb = a.any(axis=2), b.any(axis=2)
    return float((ma & mb).sum() / max((ma | mb).sum(), 1))


@pytest.fixture(scope="module")
def photo_results() -> list[tuple[str, np.ndarray, PoseResult]]:
    """(name, BGR image, keypoints of the embedded model on its person boxes) for every available real photo,
    plus astronaut resized to an odd 511x383 canvas."""
    est = Estimator()
    out = []
    for path, boxes in PHOTOS.items():
        image = cv2.imread(str(path))
        if image is not None:
            out.append((path.name, image, est(image, np.array(boxes, np.float32))))
    odd = cv2.resize(cv2.imread(str(DATA_DIR / "astronaut.jpg")), (511, 383), interpolation=cv2.INTER_AREA)
    out.append(("astronaut_511x383", odd, est(odd, np.array([[0, 0, 511, 383], [90, 0, 420, 250]], np.float32))))
    return out


def confident(result: PoseResult) -> PoseResult:
    """The same keypoints with each person's scores divided by their max: the embedded model, trained on generated
    people, scores real photos at 0.2-0.5 at most, which would leave hands undrawn; the order of confidence stays."""
    scores = result.scores / result.scores.max(axis=1, keepdims=True)
    return PoseResult(result.keypoints, scores.astype(np.float32), result.boxes)


def test_canvas_pixel_identical_to_annotator_on_real_photos(annotator, photo_results):
    drawn_parts = np.zeros(3, int)  # persons with body joints, hand points, face points drawn
    for name, image, result in photo_results:
        h, w = image.shape[:2]
        for r in (result, confident(result)):
            ref = annotator_canvas(annotator, r, h, w)
            ours = draw_openpose(r, (h, w), rgb=True)
            assert ours.shape == ref.shape == (h, w, 3) and ours.dtype == ref.dtype == np.uint8
            diff = np.argwhere((ours != ref).any(axis=2))
            assert len(diff) == 0, f"{name}: {len(diff)} pixels differ from the annotator's, first at {diff[:3]}"
            np.testing.assert_array_equal(draw_openpose(r, (h, w)), ref[..., ::-1])  # BGR = reversed channels
            s = r.scores
            drawn_parts += [(s[:, :17] > 0.3).any(1).sum(), (s[:, 91:] >= 0.3).any(1).sum(),
                            (s[:, 23:91] >= 0.3).any(1).sum()]
    assert len(photo_results) >= 3 and (drawn_parts >= 3).all(), drawn_parts


def test_saved_png_equals_annotators_saved_png(annotator, photo_results, tmp_path):
    from PIL import Image

    name, image, result = photo_results[1]
    h, w = image.shape[:2]
    r = confident(result)
    assert cv2.imwrite(str(tmp_path / "ours.png"), draw_openpose(r, (h, w)))
    Image.fromarray(annotator_canvas(annotator, r, h, w)).save(tmp_path / "annotator.png")  # as controlnet_aux saves
    ours, ref = (np.asarray(Image.open(tmp_path / f"{n}.png").convert("RGB")) for n in ("ours", "annotator"))
    assert ref.any() and np.array_equal(ours, ref)


def edge_case_persons() -> PoseResult:
    """Three overlapping persons on a 511x383 canvas: integer coordinates (whose x/W*W round trip can drop one
    float32 step, hence one pixel), points at and just around 0 and 1 px, outside the canvas, scores exactly at
    and one float32 step around 0.3 everywhere (shoulders included, so the neck), person 1's right hand missing."""
    rng = np.random.default_rng(7)
    k = np.stack([rng.integers(-30, 541, (3, 133)), rng.integers(-30, 413, (3, 133))], axis=-1).astype(np.float32)
    k[0, 91:112] = rng.uniform(-1.5, 6.0, (21, 2))           # a left hand crowding the top-left corner
    k[0, 91:96] = [[0, 0], [0.5, 3], [0.99, 3], [1.0, 1.0], [3, 0.999]]
    k[2, 23:40, 0] = [0, 1, 0.999, 1.0001, 510, 511, 512, 600, -1, 2, 3, 4, 5, 6, 7, 8, 9]
    at = np.float32(0.3)
    choices = np.array([0.0, np.nextafter(at, np.float32(0)), at, np.nextafter(at, np.float32(1)), 0.9, 1.0],
                       np.float32)
    s = rng.choice(choices, (3, 133)).astype(np.float32)
    s[0, 91:112] = 1.0
    s[1, 112:133] = 0.0
    s[1, [5, 6]] = at
    s[2, [5, 6]] = [np.nextafter(at, np.float32(1)), 1.0]
    return PoseResult(k, s, np.zeros((3, 4), np.float32))


def test_canvas_pixel_identical_to_annotator_on_edge_cases(annotator):
    r = edge_case_persons()
    h, w = 383, 511
    y = r.keypoints[..., 1]
    assert ((y / np.float32(h)) * np.float32(h)).astype(int).__ne__(y.astype(int)).any()  # round trip exercised
    ref = annotator_canvas(annotator, r, h, w)
    np.testing.assert_array_equal(draw_openpose(r, (h, w), rgb=True), ref)
    for sub in (r[0], r[1], r[2], r[1:]):
        np.testing.assert_array_equal(draw_openpose(sub, (h, w), rgb=True), annotator_canvas(annotator, sub, h, w))
    empty = PoseResult(np.zeros((0, 133, 2), np.float32), np.zeros((0, 133), np.float32), np.zeros((0, 4)))
    np.testing.assert_array_equal(draw_openpose(empty, (h, w), rgb=True), annotator_canvas(annotator, empty, h, w))


def test_scaled_style_equals_annotator_at_512_only(annotator, photo_results):
    name, image, result = next(p for p in photo_results if p[0] == "astronaut.jpg")
    r = confident(result)
    ref = annotator_canvas(annotator, r, 512, 512)
    np.testing.assert_array_equal(draw_openpose(r, (512, 512), style="scaled", rgb=True), ref)
    big = PoseResult(r.keypoints * 2, r.scores, r.boxes * 2)
    scaled = draw_openpose(big, (1024, 1024), style="scaled")
    plain = draw_openpose(big, (1024, 1024))
    # every size doubles: limbs (long, thin) draw ~2x the annotator's fixed-size area on the same canvas, dots 4x
    ratio = scaled.any(axis=2).sum() / plain.any(axis=2).sum()
    assert 1.6 < ratio < 4, ratio
    assert drawn_iou(cv2.resize(scaled, (512, 512), interpolation=cv2.INTER_AREA), ref[..., ::-1]) > 0.75


# --- The annotator's rules checked pixel by pixel, without the reference --------------------------------------------
def one_person(points: dict[int, tuple[float, float]]) -> PoseResult:
    """A person whose only confident (score 1) keypoints are `points` (mmpose 133-point indices -> x, y)."""
    k = np.zeros((1, 133, 2), np.float32)
    s = np.zeros((1, 133), np.float32)
    for i, xy in points.items():
        k[0, i], s[0, i] = xy, 1.0
    return PoseResult(k, s, np.zeros((1, 4), np.float32))


def extent(canvas: np.ndarray, color_bgr: tuple[int, int, int]) -> tuple[int, int]:
    """Width and height of the pixels of exactly this colour."""
    ys, xs = np.nonzero((canvas == color_bgr).all(axis=2))
    return int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def test_hand_points_blue_radius_4_face_white_radius_3_at_any_size():
    for size in (256, 512, 2048):
        c = size // 2
        canvas = draw_openpose(one_person({91: (c - 40.5, c), 23: (c + 40.7, c)}), (size, size))  # 1 hand pt, 1 face pt
        assert extent(canvas, (255, 0, 0)) == (9, 9)        # blue in BGR: RGB (0, 0, 255), radius 4
        assert extent(canvas, (255, 255, 255)) == (7, 7)    # white, radius 3
        assert tuple(canvas[c, c - 40]) == (255, 0, 0) and tuple(canvas[c, c + 40]) == (255, 255, 255)
        coloured = (canvas == (255, 0, 0)).all(axis=2) | (canvas == (255, 255, 255)).all(axis=2)
        assert np.array_equal(canvas.any(axis=2), coloured)  # nothing else drawn


def test_body_limb_dimmed_joints_full_colour_fixed_width():
    for size in (512, 1536):
        # right shoulder (OpenPose 2, 0-based) to right elbow (3) is limb 2: RGB (255, 170, 0) * 0.6
        canvas = draw_openpose(one_person({6: (100, 100), 8: (100, 300)}), (size, size), rgb=True)
        limb = (canvas == (153, 102, 0)).all(axis=2)
        assert limb[200].sum() == 9                          # ellipse half-width 4: 9 px across, at any size
        assert tuple(canvas[100, 100]) == (255, 170, 0) and tuple(canvas[300, 100]) == (255, 255, 0)  # joints 2, 3
        assert np.array_equal(canvas.any(axis=2), limb | (canvas == 255).any(axis=2))  # limb dimmed, joints not
    scaled = draw_openpose(one_person({6: (300, 300), 8: (300, 900)}), (1536, 1536), style="scaled", rgb=True)
    assert (scaled == (153, 102, 0)).all(axis=2)[600].sum() == 25  # scaled: half-width 4 * 3 = 12


def test_hand_edges_and_skipped_points():
    # left hand wrist (91) and thumb base (92): edge 0 is red, 2 px thick; points at < 1 px are not drawn
    canvas = draw_openpose(one_person({91: (50.2, 50.9), 92: (90.7, 50.1), 93: (0.99, 30), 94: (30, 0.5)}),
                           (128, 128), rgb=True)
    line = cv2.line(np.zeros((128, 128, 3), np.uint8), (50, 50), (90, 50), (255, 0, 0), thickness=2)
    assert tuple(canvas[50, 70]) == (255, 0, 0) and np.array_equal(canvas[:, 56:85], line[:, 56:85])
    assert not canvas[:, :6].any() and not canvas[:6].any()
    assert tuple(canvas[50, 50]) == (0, 0, 255) and tuple(canvas[50, 90]) == (0, 0, 255)


def test_style_and_size_errors():
    r = one_person({0: (10, 10)})
    with pytest.raises(DwposeEdgeError, match="style"):
        draw_openpose(r, (64, 64), style="big")
    with pytest.raises(DwposeEdgeError, match="canvas_size"):
        draw_openpose(r, (0, 64))


def test_predict_writes_the_annotator_canvas_for_openpose(annotator, tmp_path):
    from PIL import Image

    from dwpose_edge.predict import run_predict

    est = Estimator()
    photo = DATA_DIR / "astronaut.jpg"
    summary = run_predict(est, [str(photo)], draw_dir=str(tmp_path), fmt="openpose", progress=False)
    assert summary["persons"] == 1 and (tmp_path / "astronaut_pose.png").exists()
    image = cv2.imread(str(photo))
    result = est(image)
    Image.fromarray(annotator_canvas(annotator, result, *image.shape[:2])).save(tmp_path / "annotator.png")
    saved, ref = (np.asarray(Image.open(tmp_path / name).convert("RGB"))
                  for name in ("astronaut_openpose.png", "annotator.png"))
    assert ref.any() and np.array_equal(saved, ref)
    run_predict(est, [str(photo)], draw_dir=str(tmp_path / "coco"), fmt="coco", progress=False)
    assert not (tmp_path / "coco" / "astronaut_openpose.png").exists()
