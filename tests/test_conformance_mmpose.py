"""Conformance against the REAL mmpose 1.3.2, run in its own cached venv (numpy<2).

tests/mmpose_ref/make_venv.sh builds the venv once (~1 min, cached outside the repo);
tests/mmpose_ref/mmpose_dump.py then builds every official DWPose config there, writes
seeded random weights as mmpose checkpoints and dumps mmpose's own tensors (cached by a
hash of the scripts and inputs; 15-40 s when cold, ~200 MB). The tests below feed the same
checkpoints/inputs to dwpose_edge and compare.

Env: DWPOSE_EDGE_MMPOSE_VENV (venv path), DWPOSE_EDGE_REQUIRE_CONFORMANCE=1 or CI=true turn
an unreachable package index into a failure instead of a skip.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dwpose_edge.data import DATA_DIR
from mmpose_venv import MAKE_VENV, REF_DIR, cached_output, mmpose_python  # noqa: F401 (fixture)

pytestmark = pytest.mark.conformance

DUMP = REF_DIR / "mmpose_dump.py"
IMAGE = DATA_DIR / "grace_hopper.jpg"  # matplotlib's sample photo (512x600, public domain)
# x1, y1, x2, y2 in pixels, float: the person, the face, one box partly outside the image
# (left and bottom), a small one; fractional coordinates on purpose.
BOXES = [[60.5, 20.25, 470.75, 599.0], [150.0, 60.0, 360.0, 320.0],
         [-80.5, 300.0, 300.3, 700.7], [300.0, 400.0, 420.0, 560.0]]
SEED = 0
VARIANTS = ("dwpose-t", "dwpose-s", "dwpose-m", "dwpose-l", "dwpose-l-384")
RUN_VARIANTS = ("dwpose-t", "dwpose-s")  # random-weight checkpoints through inference_topdown
LOGIT_VARIANTS = ("dwpose-t", "dwpose-s", "dwpose-l-384")  # + logits on random inputs (l-384: the 288x384 head)

LOGIT_ATOL = 1e-4     # |logits| < 20; on the same torch build ours come out bit-identical (diff 0.0)
SCORE_ATOL = 1e-4     # scores are max logits, so same bound
CROP_ATOL = 1e-3      # normalized pixels; one uint8 step is 1/57 ~ 0.017
# Keypoints: equal argmax bins give the same coordinates up to float rounding (both map bins back
# in float64 and store float32), while one bin is scale / (2 * W) ~ 1 - 4 px here.
KPT_ATOL_PX = 1e-4
# Ties: where mmpose's own top two logits differ by less than LOGIT_ATOL, the argmax is decided
# by float rounding order, not by the implementation; any bin whose mmpose logit is within
# LOGIT_ATOL of mmpose's max is then an equally conformant answer. With these weights mmpose's
# own logits have 0-2 such near-ties per run (of ~2100 argmaxes), and identical logits never
# disagree at all; more than MAX_TIES disagreements means a real bug, not rounding.
TIE_TOL = LOGIT_ATOL
MAX_TIES = 8


@pytest.fixture(scope="session")
def ref(mmpose_python: str) -> dict:
    """mmpose's dump (keys.json, dump.npz, checkpoints), cached by a hash of scripts + inputs."""
    out = cached_output(mmpose_python, DUMP,
                        ["--image", str(IMAGE), "--boxes", json.dumps(BOXES), "--seed", str(SEED),
                         "--logit-variants", ",".join(LOGIT_VARIANTS), "--topdown-variants", ",".join(RUN_VARIANTS)],
                        [DUMP, MAKE_VENV, IMAGE], json.dumps([BOXES, SEED, RUN_VARIANTS, LOGIT_VARIANTS]), "mmpose-dumps")
    with np.load(out / "dump.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return {"dir": out, "npz": arrays, "keys": json.loads((out / "keys.json").read_text()),
            "info": json.loads((out / "info.json").read_text())}


def _ckpt(ref: dict, variant: str) -> str:
    return str(ref["dir"] / f"{variant}.pth")


def _input_size(variant: str) -> tuple[int, int]:
    from dwpose_edge.specs import get_spec

    return tuple(get_spec(variant).input_size)


def test_reference_environment(ref):
    """The dump came from mmpose 1.3.2 as its users run it (numpy 1, OpenCV 4.x), and this environment
    runs an OpenCV 4.x too: the default install pins opencv<5, whose warpAffine differs (README)."""
    import cv2

    info = ref["info"]
    assert info["mmpose"] == "1.3.2"
    assert info["numpy"].startswith("1."), info
    assert info["opencv"].startswith("4."), f"the mmpose reference venv runs OpenCV {info['opencv']}, not 4.x"
    assert cv2.__version__.startswith("4."), (
        f"this environment runs OpenCV {cv2.__version__}; dwpose-edge pins opencv-python-headless<5 because "
        "OpenCV 5's warpAffine gives other crops than the 4.x mmpose users run")


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_keys_and_shapes(ref, variant):
    from dwpose_edge.models import build_model

    theirs = {k: tuple(s) for k, s in ref["keys"][variant]}
    ours = {k: tuple(v.shape) for k, v in build_model(variant).state_dict().items()}
    missing = sorted(set(theirs) - set(ours))
    unexpected = sorted(set(ours) - set(theirs))
    shapes = [f"{k}: ours {ours[k]} mmpose {theirs[k]}" for k in theirs if k in ours and ours[k] != theirs[k]]
    assert not (missing or unexpected or shapes), (
        f"{variant}: missing {missing[:10]}, unexpected {unexpected[:10]}, shape mismatches {shapes[:10]}")


def test_flip_indices(ref):
    from dwpose_edge.specs import FLIP_INDICES

    np.testing.assert_array_equal(np.asarray(FLIP_INDICES), ref["npz"]["flip_indices"])


@pytest.fixture(scope="session")
def loaded(ref):
    """Our models with mmpose's saved checkpoints loaded through our public loader."""
    from dwpose_edge.models import build_model, load_checkpoint

    cache: dict = {}

    def get(variant: str):
        if variant not in cache:
            cache[variant] = load_checkpoint(build_model(variant), _ckpt(ref, variant)).eval()
        return cache[variant]

    return get


def _run(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    with torch.no_grad():
        sx, sy = model(torch.from_numpy(np.ascontiguousarray(x)))
    return sx.numpy(), sy.numpy()


def test_checkpoint_is_mmengine_format(ref):
    """The files we load are what mmengine's Runner writes (meta with numpy dataset_meta)."""
    import zipfile

    with zipfile.ZipFile(_ckpt(ref, "dwpose-t")) as z:
        pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
        data = z.read(pkl)
    assert b"dataset_meta" in data and b"state_dict" in data
    assert b"numpy" in data, "meta['dataset_meta'] should hold numpy arrays as mmpose's do"


@pytest.mark.parametrize("variant", LOGIT_VARIANTS)
def test_logits_match_mmpose(ref, loaded, variant):
    d = ref["npz"]
    sx, sy = _run(loaded(variant), d[f"logits_input/{variant}"])
    np.testing.assert_allclose(sx, d[f"logits_x/{variant}"], rtol=0, atol=LOGIT_ATOL)
    np.testing.assert_allclose(sy, d[f"logits_y/{variant}"], rtol=0, atol=LOGIT_ATOL)


def test_image_decoding_matches(ref):
    import cv2

    img = cv2.imread(str(IMAGE))
    np.testing.assert_array_equal(img, ref["npz"]["image_bgr"],
                                  err_msg="cv2.imread differs from mmcv.imread of the same JPEG")


@pytest.mark.parametrize("size", [(192, 256), (288, 384)], ids=["192x256", "288x384"])
def test_crop_boxes_matches_mmpose(ref, size):
    from dwpose_edge.preprocess import crop_boxes

    d, tag = ref["npz"], f"{size[0]}x{size[1]}"
    crops, centers, scales = crop_boxes(d["image_bgr"], np.asarray(BOXES, np.float32), size)
    np.testing.assert_allclose(centers, d[f"centers/{tag}"], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(scales, d[f"scales/{tag}"], rtol=1e-6, atol=1e-4)
    assert crops.shape == d[f"crops/{tag}"].shape and crops.dtype == np.float32
    np.testing.assert_allclose(crops, d[f"crops/{tag}"], rtol=0, atol=CROP_ATOL)


def test_decode_simcc_matches_mmpose(ref):
    """Crafted logits (negative and zero maxima, exact ties) through mmpose's decode path."""
    from dwpose_edge.postprocess import decode_simcc

    d = ref["npz"]
    w, h = (int(v) for v in d["decode_input_size"])
    tag = f"{w}x{h}"
    kpts, scores = decode_simcc(d["decode_simcc_x"], d["decode_simcc_y"], d[f"centers/{tag}"],
                                d[f"scales/{tag}"], (w, h))
    np.testing.assert_array_equal(scores, d["decode_scores"])
    np.testing.assert_allclose(kpts, d["decode_kpts"], rtol=0, atol=KPT_ATOL_PX)


@pytest.mark.parametrize("flip", [False, True], ids=["noflip", "flip"])
@pytest.mark.parametrize("variant", RUN_VARIANTS)
def test_crop_logits_match_mmpose(ref, loaded, variant, flip):
    """Logits inference_topdown decoded, from mmpose's own crops (isolates model + flip merge)."""
    from dwpose_edge.postprocess import merge_flip

    d, tag = ref["npz"], "flip" if flip else "noflip"
    w, h = _input_size(variant)
    crops = d[f"crops/{w}x{h}"]
    sx, sy = _run(loaded(variant), crops)
    if flip:
        sx, sy = merge_flip((sx, sy), _run(loaded(variant), crops[..., ::-1]))
    np.testing.assert_allclose(sx, d[f"topdown_logits_x/{variant}/{tag}"], rtol=0, atol=LOGIT_ATOL)
    np.testing.assert_allclose(sy, d[f"topdown_logits_y/{variant}/{tag}"], rtol=0, atol=LOGIT_ATOL)


def _check_keypoints(ours: np.ndarray, theirs: np.ndarray, logits: tuple[np.ndarray, np.ndarray],
                     centers: np.ndarray, scales: np.ndarray, input_size: tuple[int, int]) -> list[str]:
    """Equal keypoints, except where mmpose's own logits have a near-tie and ours picked a tied bin."""
    bad = np.abs(ours - theirs) > KPT_ATOL_PX
    ties, errors = [], []
    for n, k, axis in zip(*np.nonzero(bad)):
        row = logits[axis][n, k]
        peak = row.max()
        cand = np.flatnonzero(row >= peak - TIE_TOL).astype(np.float32)
        if peak <= 0:
            cand = np.array([-1.0], np.float32)
        coords = cand / 2.0 / input_size[axis] * scales[n, axis] + centers[n, axis] - 0.5 * scales[n, axis]
        if len(cand) > 1 and np.abs(coords - ours[n, k, axis]).min() <= KPT_ATOL_PX:
            ties.append(f"box {n} kpt {k} axis {axis}: tied bins {cand.tolist()}")
        else:
            errors.append(f"box {n} kpt {k} axis {'xy'[axis]}: ours {ours[n, k, axis]:.4f} mmpose "
                          f"{theirs[n, k, axis]:.4f} (mmpose top-2 logit gap "
                          f"{peak - np.sort(row)[-2]:.2e})")
    if len(ties) > MAX_TIES:
        errors.append(f"{len(ties)} near-tie disagreements (> {MAX_TIES}): {ties[:5]}")
    return errors


@pytest.mark.parametrize("flip", [False, True], ids=["noflip", "flip"])
@pytest.mark.parametrize("variant", RUN_VARIANTS)
def test_estimator_matches_inference_topdown(ref, variant, flip):
    import cv2

    from dwpose_edge import Estimator

    d, tag = ref["npz"], "flip" if flip else "noflip"
    w, h = _input_size(variant)
    est = Estimator(model=variant, weights=_ckpt(ref, variant), runtime="torch", device="cpu", flip_test=flip)
    res = est(cv2.imread(str(IMAGE)), boxes=np.asarray(BOXES, np.float32))
    kpts, scores = np.asarray(res.keypoints), np.asarray(res.scores)
    ref_kpts, ref_scores = d[f"topdown_kpts/{variant}/{tag}"], d[f"topdown_scores/{variant}/{tag}"]
    assert kpts.shape == ref_kpts.shape == (len(BOXES), 133, 2)
    np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=SCORE_ATOL)
    logits = (d[f"topdown_logits_x/{variant}/{tag}"], d[f"topdown_logits_y/{variant}/{tag}"])
    errors = _check_keypoints(kpts, ref_kpts, logits, d[f"centers/{w}x{h}"], d[f"scales/{w}x{h}"], (w, h))
    assert not errors, f"{len(errors)} keypoints differ from mmpose inference_topdown:\n" + "\n".join(errors[:20])
