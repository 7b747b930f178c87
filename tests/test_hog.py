"""HOG + linear-SVM people detector (dwpose_edge.detectors.hog): both scan backends, against OpenCV 4.x's HOGDescriptor.

The numpy backend is compared with tests/hog_ref/opencv4_ref.npz everywhere (it is the only HOG on
OpenCV 5), and with this process's cv2.HOGDescriptor directly where cv2 has one (OpenCV 4.x, the
default install). The npz holds OpenCV 4.14's outputs on tests/hog_ref/vtest_frame400_crop.jpg
(frame 400 of OpenCV's vtest.avi, cropped to x 248-760, y 64-448) and the package photos; regenerate
it with an OpenCV 4.x python:
    .venv/bin/python tests/hog_ref/opencv4_dump.py tests/hog_ref/opencv4_ref.npz \\
        --desc 64x160/32 vtest=tests/hog_ref/vtest_frame400_crop.jpg \\
        astronaut=dwpose_edge/data/astronaut.jpg grace_hopper=dwpose_edge/data/grace_hopper.jpg
Debian's opencv-doc sample images (`apt-get install opencv-doc`) are used where installed, and the
tests needing them skip otherwise. tests/hog_ref/compare_paths.py times the two backends.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from dwpose_edge.detectors import hog
from dwpose_edge.data import DATA_DIR
from dwpose_edge.detectors import HogDetector, make_detector
from dwpose_edge.errors import InputError
from hog_ref.samples import OPENCV_DOC, VTEST, vtest_frames

REF_DIR = Path(__file__).parent / "hog_ref"
CROP = REF_DIR / "vtest_frame400_crop.jpg"

# Hand-labelled tight person boxes (x1, y1, x2, y2), read off 2x renders with a pixel grid.
CROP_PEOPLE = [(25, 135, 54, 221), (341, 80, 369, 140), (439, 236, 496, 348)]
VTEST_PEOPLE = {0: [(254, 220, 283, 308), (639, 241, 684, 320)],
                400: [(273, 199, 302, 285), (589, 144, 617, 204), (687, 300, 744, 412)]}
VTEST_TOO_SMALL = {0: [(500, 157, 529, 232)]}  # a 75 px walker: below HOG's ~100 px minimum

DESC_ATOL = 2e-3      # observed 4e-4: OpenCV's fast atan2 vs numpy's
SCORE_ATOL = 5e-3     # observed 1e-3 on SVM margins of about -5..3

needs_cv_hog = pytest.mark.skipif(not hog.opencv_has_hog(),
                                  reason=f"OpenCV {cv2.__version__} has no HOGDescriptor (OpenCV 5 dropped it)")
BACKENDS = ["numpy", pytest.param("opencv", marks=needs_cv_hog)]


@pytest.fixture(scope="module")
def ref() -> dict:
    with np.load(REF_DIR / "opencv4_ref.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    image = cv2.imread(str(CROP))
    assert image is not None
    return image


def _photo(name: str) -> np.ndarray:
    image = cv2.imread(str(CROP if name == "vtest" else DATA_DIR / f"{name}.jpg"))
    assert image is not None
    return image


def _xyxy(rects: np.ndarray) -> np.ndarray:
    rects = np.asarray(rects, np.float32).reshape(-1, 4)
    return np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)


def _covers(box, person, min_inside: float = 0.8) -> bool:
    """`box` holds most of the tight `person` box and is at most ~2.5x its height (HOG boxes are loose)."""
    ix = max(0.0, min(box[2], person[2]) - max(box[0], person[0]))
    iy = max(0.0, min(box[3], person[3]) - max(box[1], person[1]))
    area = (person[2] - person[0]) * (person[3] - person[1])
    ratio = (box[3] - box[1]) / (person[3] - person[1])
    return ix * iy >= min_inside * area and 1.0 <= ratio <= 2.6


def _assert_found(boxes: np.ndarray, people, missed=()) -> None:
    for person in people:
        assert any(_covers(b, person) for b in boxes), f"person {person} not found in {boxes.tolist()}"
    for person in missed:
        assert not any(_covers(b, person, 0.5) for b in boxes), f"{person} unexpectedly found"
    for b in boxes:
        assert any(_covers(b, p, 0.5) for p in list(people) + list(missed)), f"false positive {b.tolist()}"


def _assert_same_hits(ours: tuple[np.ndarray, np.ndarray], theirs: tuple[np.ndarray, np.ndarray]) -> None:
    """Same windows above the threshold, same scores; a window may differ only where its score is ~0.

    Windows of two scales can round to the same integer box, and OpenCV's threads return hits in any
    order, so the scores of a box are compared as sorted lists, not one score per box."""
    def by_box(boxes: np.ndarray, scores: np.ndarray) -> dict[tuple, list[float]]:
        out: dict[tuple, list[float]] = {}
        for b, s in zip(boxes.astype(int).tolist(), scores.tolist()):
            out.setdefault(tuple(b), []).append(s)
        return {k: sorted(v) for k, v in out.items()}

    mine, other = by_box(*ours), by_box(*theirs)
    for key in mine.keys() | other.keys():
        a, b = mine.get(key, []), other.get(key, [])
        while a and b:  # pair the closest scores; what is left over must be ~0
            i, j = min(((i, j) for i in range(len(a)) for j in range(len(b))), key=lambda ij: abs(a[ij[0]] - b[ij[1]]))
            assert abs(a.pop(i) - b.pop(j)) < SCORE_ATOL, key
        for rest in a + b:
            assert abs(rest) < SCORE_ATOL, f"window {key} found by one side only"


def _assert_same_groups(ours: tuple[np.ndarray, np.ndarray], theirs: tuple[np.ndarray, np.ndarray]) -> None:
    ob, os_ = ours
    tb, ts = theirs
    assert len(ob) == len(tb), (ob.tolist(), tb.tolist())
    for box, score in zip(tb, ts):
        j = int(np.argmin(np.abs(ob - box).sum(1)))
        np.testing.assert_allclose(ob[j], box, atol=1.0)
        assert abs(os_[j] - score) < SCORE_ATOL


def test_people_svm_is_opencvs_default_detector():
    svm = hog.load_people_svm()
    assert svm.shape == (3781,) and svm.dtype == np.float32 and np.isfinite(svm).all()
    assert svm[-1] == pytest.approx(-6.6657914, abs=1e-5)  # the bias (rho) of the Dalal-Triggs model
    assert hog.DESCRIPTOR_LEN == 3780


@needs_cv_hog
def test_svm_file_equals_this_opencvs_default_detector():
    """What tests/hog_ref/extract_svm.py wrote is still what OpenCV ships."""
    np.testing.assert_array_equal(np.asarray(cv2.HOGDescriptor_getDefaultPeopleDetector()).reshape(-1),
                                  hog.load_people_svm())


@pytest.mark.parametrize("name", ["vtest", "astronaut", "grace_hopper"])
def test_descriptors_match_opencv4(ref, name):
    image = _photo(name)
    ours = hog.compute(np.ascontiguousarray(image[:160, :64]), win_stride=32)
    theirs = ref[f"{name}/desc"]
    assert ours.shape == theirs.shape == (2, 1, 3780)
    a, b = ours.reshape(-1, 3780), theirs.reshape(-1, 3780)
    assert np.abs(a - b).max() < DESC_ATOL
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99999


@pytest.mark.parametrize("name", ["vtest", "astronaut", "grace_hopper"])
def test_window_scores_match_opencv4(ref, name):
    image = _photo(name)
    scores = hog.window_scores(hog.image_blocks(image, pad=8), hog.load_people_svm())
    assert scores.shape == ref[f"{name}/scores"].shape
    assert np.abs(scores - ref[f"{name}/scores"]).max() < SCORE_ATOL


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["vtest", "astronaut", "grace_hopper"])
def test_detect_multiscale_matches_opencv4(ref, name, backend):
    image = _photo(name)
    det = hog.HogPeopleDetector(backend=backend)
    assert det.backend_used == backend
    _assert_same_hits(det.raw_hits(image), (_xyxy(ref[f"{name}/raw_rects"]), ref[f"{name}/raw_weights"]))
    _assert_same_groups(det.detect(image), (_xyxy(ref[f"{name}/rects"]), ref[f"{name}/weights"]))


def test_backend_is_chosen_by_feature_detection(monkeypatch):
    assert hog.HogPeopleDetector().backend_used == ("opencv" if hasattr(cv2, "HOGDescriptor") else "numpy")
    assert hog.HogPeopleDetector(group_eps=0.3).backend_used == "numpy"   # OpenCV's eps is fixed at 0.2
    monkeypatch.delattr(cv2, "HOGDescriptor", raising=False)              # as on OpenCV 5
    assert not hog.opencv_has_hog()
    assert hog.HogPeopleDetector().backend_used == "numpy"
    assert HogDetector().hog.backend_used == "numpy"
    with pytest.raises(InputError, match="no cv2.HOGDescriptor.*backend='numpy'"):
        hog.HogPeopleDetector(backend="opencv")


def test_bad_backend_settings_are_input_errors():
    with pytest.raises(InputError, match="one of"):
        hog.HogPeopleDetector(backend="cuda")
    with pytest.raises(InputError, match="multiple of 8"):
        hog.HogPeopleDetector(win_stride=4)
    if hog.opencv_has_hog():
        with pytest.raises(InputError, match="eps 0.2.*backend='numpy'"):
            hog.HogPeopleDetector(backend="opencv", group_eps=0.3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_finds_the_walkers_in_a_vtest_frame(crop, backend):
    boxes, scores = HogDetector(upscale_below=0, backend=backend).detect(crop)   # as OpenCV 4 finds them
    assert boxes.dtype == np.float32 and scores.dtype == np.float32 and len(boxes) == len(scores) == 3
    assert (np.diff(scores) <= 0).all() and (scores > 0.3).all()
    _assert_found(boxes, CROP_PEOPLE)


def test_make_detector_hog_works_on_this_opencv(crop):
    det = make_detector("hog")
    assert isinstance(det, HogDetector)
    boxes, _ = det.detect(crop)  # the 384 px crop is searched at 400/384 scale: one more (false) box
    for person in CROP_PEOPLE:
        assert any(_covers(b, person) for b in boxes)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_misses_portraits(name, backend):
    """Documented limit: half-body / head-and-shoulders portraits are not pedestrians to HOG (nor to OpenCV's)."""
    boxes, scores = HogDetector(backend=backend).detect(_photo(name))
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_small_images_are_upscaled_for_the_search(crop):
    small = cv2.resize(crop, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)   # walkers now 30-55 px tall
    plain, _ = HogDetector(upscale_below=0).detect(small)
    assert not any(_covers(b * 2, p) for b in plain for p in CROP_PEOPLE[:2])     # below the 64x128 window
    boxes, _ = HogDetector(upscale_below=384).detect(small)                      # searched at 2x
    _assert_found(boxes * 2, CROP_PEOPLE)


def test_images_smaller_than_the_window_find_nothing():
    det = HogDetector(upscale_below=0)
    boxes, scores = det.detect(np.full((100, 50, 3), 128, np.uint8))
    assert boxes.shape == (0, 4) and boxes.dtype == np.float32 and scores.shape == (0,)


def test_bad_inputs_are_input_errors(crop):
    with pytest.raises(InputError, match="grayscale"):
        HogDetector().detect(crop[:, :, 0])
    with pytest.raises(InputError, match="uint8"):
        hog.compute(crop.astype(np.float32))
    with pytest.raises(InputError, match="multiple of 8"):
        hog.compute(crop, win_stride=12)
    with pytest.raises(InputError, match="at least 16x16"):
        hog.image_blocks(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(InputError, match="channels"):
        hog.compute(np.zeros((128, 64, 4), np.uint8))


def test_mirror_padding_wider_than_the_image_matches_reflect101():
    tiny = np.arange(5 * 3 * 3, dtype=np.uint8).reshape(5, 3, 3) * 5
    ours = hog._mirror_pad(tiny, 9)
    theirs = cv2.copyMakeBorder(tiny, 9, 9, 9, 9, cv2.BORDER_REFLECT_101)
    np.testing.assert_array_equal(ours, theirs)
    mag, angle = hog.gradients(tiny, pad=8)
    assert mag.shape == angle.shape == (5 + 16, 3 + 16)


def test_gray_and_bgr_agree_on_a_gray_image(crop):
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    np.testing.assert_allclose(hog.compute(gray, 64), hog.compute(cv2.merge([gray] * 3), 64), atol=1e-6)


def test_orientation_votes_hand_computed():
    # 0 deg sits 10 deg above bin 8's centre (170) and 10 below bin 0's (10): half each;
    # 45 deg is 0.75 of the way from bin 1 (30) to bin 2 (50); 175 deg wraps between bins 8 and 0.
    angle = np.deg2rad(np.array([[0.0, 45.0, 175.0]], np.float32)).astype(np.float32)
    votes = hog.orientation_votes(np.array([[2.0, 4.0, 1.0]], np.float32), angle)
    np.testing.assert_allclose(votes[0, 0, [8, 0]], [1.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(votes[0, 1, [1, 2]], [1.0, 3.0], atol=1e-5)
    np.testing.assert_allclose(votes[0, 2, [8, 0]], [0.75, 0.25], atol=1e-5)
    assert np.isclose(votes.sum(axis=2), [[2.0, 4.0, 1.0]]).all()


def test_block_histograms_are_l2hys_normalised(crop):
    blocks = hog.image_blocks(crop)
    norms = np.linalg.norm(blocks, axis=2)
    textured = norms > 0.5
    assert textured.mean() > 0.9 and np.allclose(norms[textured], 1.0, atol=1e-2)
    assert blocks.max() <= 1.0 and blocks.min() >= 0


def test_group_rectangles_hand_computed():
    boxes = np.array([[100, 100, 164, 228], [104, 100, 168, 228], [100, 96, 164, 224],   # one person, 4 hits
                      [96, 100, 160, 228],
                      [300, 50, 364, 178],                                                # lone hit
                      [110, 110, 140, 170], [111, 110, 141, 170], [110, 111, 140, 171]],  # inside the first
                     np.float32)
    scores = np.array([1.0, 2.0, 0.5, 0.6, 3.0, 0.9, 0.8, 0.7], np.float32)
    out, best = hog.group_rectangles(boxes, scores, min_neighbours=2, eps=0.2)
    # the lone hit has too few neighbours; the 3 small hits lie inside a group of more than 3
    np.testing.assert_array_equal(out, [[100, 99, 164, 227]])   # mean x, y, w, h, rounded
    np.testing.assert_array_equal(best, [2.0])                  # the best margin in the group
    out, best = hog.group_rectangles(boxes, scores, min_neighbours=0, eps=0.2)
    assert sorted(best.tolist()) == [2.0, 3.0]
    out, best = hog.group_rectangles(boxes[1:], scores[1:], min_neighbours=0, eps=0.2)  # now 3 vs 3: kept
    assert sorted(best.tolist()) == pytest.approx([0.9, 2.0, 3.0])


# --- Debian opencv-doc sample data (skipped where the package is not installed) -----------------

def _vtest_frame(index: int) -> np.ndarray:
    if not VTEST.exists():
        pytest.skip(f"{VTEST} absent: `apt-get install opencv-doc` ships OpenCV's sample video")
    frames = vtest_frames([index])
    if index not in frames:
        pytest.skip(f"this OpenCV cannot decode {VTEST} (no video backend)")
    return frames[index]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("index", sorted(VTEST_PEOPLE))
def test_vtest_video_frames(index, backend):
    boxes, _ = HogDetector(backend=backend).detect(_vtest_frame(index))
    _assert_found(boxes, VTEST_PEOPLE[index], VTEST_TOO_SMALL.get(index, ()))


def _doc_image(name: str) -> np.ndarray:
    path = OPENCV_DOC / name
    if not path.exists():
        pytest.skip(f"{path} absent: `apt-get install opencv-doc` ships OpenCV's sample images")
    return cv2.imread(str(path))


@pytest.mark.parametrize("backend", BACKENDS)
def test_basketball_player_found(backend):
    boxes, scores = HogDetector(backend=backend).detect(_doc_image("basketball1.png"))
    # the standing player on the left (tight box read off the photo); the man on the right is cut
    # by the frame and not found; a 0.79 box on the door frame beside his hands is a false positive
    assert _covers(boxes[0], (24, 70, 160, 460), 0.9) and scores[0] > 1.5
    assert len(boxes) == 2 and not _covers(boxes[1], (520, 20, 640, 480), 0.3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_messi_kicking_is_missed(backend):
    """Documented limit: a strongly non-upright pose (a footballer mid-kick) is not found."""
    assert len(HogDetector(backend=backend).detect(_doc_image("messi5.jpg"))[0]) == 0


# --- numpy backend against this process's OpenCV 4.x (skipped on OpenCV 5) ----------------------

def _opencv4_dump():
    """tests/hog_ref/opencv4_dump.py as a module: OpenCV's outputs, computed in this process."""
    spec = importlib.util.spec_from_file_location("opencv4_dump", REF_DIR / "opencv4_dump.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _conformance_images() -> dict[str, np.ndarray]:
    """Beyond the npz's photos; kept few, as the numpy scan costs ~0.3 s per image and call."""
    images = {"vtest_crop": cv2.imread(str(CROP)), "vtest_crop_gray": cv2.imread(str(CROP), cv2.IMREAD_GRAYSCALE)}
    for name in ("basketball1.png", "messi5.jpg"):
        if (OPENCV_DOC / name).exists():
            images[Path(name).stem] = cv2.imread(str(OPENCV_DOC / name))
    for index, frame in vtest_frames((100, 600)).items():  # 0 and 400 are in test_vtest_video_frames
        images[f"vtest_{index}"] = frame
    return images


@needs_cv_hog
@pytest.mark.conformance
def test_numpy_backend_matches_this_opencv_on_real_images():
    dump = _opencv4_dump()
    det = hog.HogPeopleDetector(backend="numpy")
    for name, image in _conformance_images().items():
        ref = dump.outputs(image, (192, 256, 8))
        ours = hog.compute(np.ascontiguousarray(image[:256, :192]))
        assert np.abs(ours - ref["desc"]).max() < DESC_ATOL, name
        scores = hog.window_scores(hog.image_blocks(image, pad=8), hog.load_people_svm())
        assert np.abs(scores - ref["scores"]).max() < SCORE_ATOL, name
        _assert_same_hits(det.raw_hits(image), (_xyxy(ref["raw_rects"]), ref["raw_weights"]))
        _assert_same_groups(det.detect(image), (_xyxy(ref["rects"]), ref["weights"]))


@needs_cv_hog
def test_committed_fixture_is_current(tmp_path):
    out = tmp_path / "ref.npz"
    _opencv4_dump().main([str(out), "--desc", "64x160/32", f"vtest={CROP}", f"astronaut={DATA_DIR / 'astronaut.jpg'}",
                          f"grace_hopper={DATA_DIR / 'grace_hopper.jpg'}"])
    with np.load(out) as fresh, np.load(REF_DIR / "opencv4_ref.npz") as committed:
        assert sorted(fresh.files) == sorted(committed.files)
        for key in committed.files:
            if key.endswith("rects") or key.endswith("weights"):
                continue
            if key != "opencv_version":
                np.testing.assert_allclose(fresh[key], committed[key], atol=1e-6, err_msg=key)
        for name in ("vtest", "astronaut", "grace_hopper"):   # OpenCV's hit order varies with its threads
            for kind in ("", "raw_"):
                assert _sorted_hits(fresh, name, kind) == _sorted_hits(committed, name, kind)


def _sorted_hits(ref, name: str, kind: str) -> list:
    rects, weights = ref[f"{name}/{kind}rects"].tolist(), np.round(ref[f"{name}/{kind}weights"], 5).tolist()
    return sorted(zip(map(tuple, rects), weights))
