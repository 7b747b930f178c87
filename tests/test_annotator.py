"""DwposeDetector against controlnet_aux 0.0.10's own code: HWC3, resize_image and the whole
`DWposeDetector.__call__` (fed the same keypoints) pixel for pixel, at several resolutions and input sizes."""
from __future__ import annotations

import hashlib
import types

import cv2
import numpy as np
import pytest

from controlnet_aux_ref import load_reference, wholebody_output
from dwpose_edge import Estimator
from dwpose_edge import annotator as annotator_module
from dwpose_edge.annotator import DwposeDetector, hwc3, resize_image, resize_size
from dwpose_edge.data import DATA_DIR
from dwpose_edge.errors import DwposeEdgeError, InputError
from dwpose_edge.result import PoseResult
from test_openpose import edge_case_persons

Image = pytest.importorskip("PIL.Image")

RESOLUTIONS = (256, 512, 768, 1024, 333)


@pytest.fixture(scope="module")
def ref() -> types.SimpleNamespace:
    return load_reference()


@pytest.fixture(scope="module")
def photo_rgb() -> np.ndarray:
    return cv2.imread(str(DATA_DIR / "astronaut.jpg"))[..., ::-1].copy()


def sizes_of(photo: np.ndarray) -> list[np.ndarray]:
    """The photo at odd and even sizes, portrait and landscape, smaller and larger than the resolutions."""
    out = []
    for w, h in ((512, 512), (511, 383), (131, 97), (383, 700), (1000, 667)):
        out.append(cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA))
    return out


def test_hwc3_identical(ref):
    rng = np.random.default_rng(0)
    for shape in ((7, 9), (7, 9, 1), (7, 9, 3), (7, 9, 4), (1, 1, 4)):
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        x.reshape(-1)[:3] = [0, 255, 128]
        np.testing.assert_array_equal(hwc3(x), ref.HWC3(x))
    with pytest.raises(InputError, match="uint8"):
        hwc3(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InputError, match="shape"):
        hwc3(np.zeros((4, 4, 2), np.uint8))


def test_resize_image_identical(ref, photo_rgb):
    for image in sizes_of(photo_rgb):
        for res in RESOLUTIONS:
            ours, theirs = resize_image(image, res), ref.resize_image(image, res)
            assert ours.shape == theirs.shape and ours.shape[:2] == resize_size(*image.shape[:2], res)
            np.testing.assert_array_equal(ours, theirs, err_msg=f"{image.shape} at {res}")
    # comfyui_controlnet_aux's upscale_method replaces Lanczos when enlarging; area when shrinking stays
    small, big = sizes_of(photo_rgb)[2], sizes_of(photo_rgb)[4]
    np.testing.assert_array_equal(resize_image(small, 512, "INTER_LANCZOS4"), ref.resize_image(small, 512))
    np.testing.assert_array_equal(resize_image(small, 512, "INTER_CUBIC"),
                                  cv2.resize(small, (704, 512), interpolation=cv2.INTER_CUBIC))
    np.testing.assert_array_equal(resize_image(big, 512, "INTER_CUBIC"), ref.resize_image(big, 512))
    with pytest.raises(InputError, match="at least 32"):
        resize_size(100, 1000, 20)  # the short side would round to 0


class SharedEstimator:
    """The same keypoints for the same image to both pipelines: the embedded model's (scores divided by their
    max, so hands and faces get drawn, as tests/test_openpose.py does) or, with `synthetic`, test_openpose's
    three edge-case persons scaled to the image."""

    def __init__(self, synthetic: bool = False):
        self.est = None if synthetic else Estimator()
        self.cache: dict[bytes, PoseResult] = {}
        self.calls = 0

    def __call__(self, image_bgr: np.ndarray) -> PoseResult:
        key = hashlib.sha256(image_bgr.tobytes() + str(image_bgr.shape).encode()).digest()
        if key not in self.cache:
            self.calls += 1
            h, w = image_bgr.shape[:2]
            if self.est is None:
                r = edge_case_persons()
                k = r.keypoints * np.array([w / 511, h / 383], np.float32)
                self.cache[key] = PoseResult(k.astype(np.float32), r.scores, r.boxes)
            else:
                r = self.est(image_bgr)
                s = (r.scores / r.scores.max(axis=1, keepdims=True)).astype(np.float32)
                self.cache[key] = PoseResult(r.keypoints, s, r.boxes)
        return self.cache[key]


def reference_call(ref, est: SharedEstimator, image, detect_resolution, image_resolution, output_type="np"):
    def pose_estimation(bgr):
        r = est(bgr)
        return wholebody_output(r.keypoints, r.scores)
    return ref.call(types.SimpleNamespace(pose_estimation=pose_estimation), image,
                    detect_resolution=detect_resolution, image_resolution=image_resolution, output_type=output_type)


@pytest.fixture(scope="module")
def model_est() -> SharedEstimator:
    return SharedEstimator()


def test_whole_call_identical_on_the_model(ref, photo_rgb, model_est):
    det = DwposeDetector(model_est)
    grace = cv2.imread(str(DATA_DIR / "grace_hopper.jpg"))[..., ::-1].copy()
    cases = [(grace, 512, 512), (grace, 384, 1024), (photo_rgb, 512, 768), (sizes_of(photo_rgb)[1], 768, 512),
             (sizes_of(photo_rgb)[2], 256, 512)]
    for image, d, r in cases:
        theirs = reference_call(ref, model_est, image, d, r)
        ours = det(image, detect_resolution=d, image_resolution=r, output_type="np")
        assert ours.shape == theirs.shape and ours.dtype == np.uint8
        assert (ours != theirs).any(axis=2).sum() == 0, f"{image.shape} {d}/{r}"
        assert theirs.any()
    pil = Image.fromarray(grace)
    ours, theirs = det(pil), reference_call(ref, model_est, pil, 512, 512, output_type="pil")
    assert isinstance(ours, Image.Image) and ours.size == theirs.size
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    assert model_est.calls <= 6  # one inference per detection image, shared by both pipelines


def test_whole_call_identical_multi_person_all_sizes(ref, photo_rgb):
    est = SharedEstimator(synthetic=True)
    det = DwposeDetector(est)
    drawn = 0
    for image in sizes_of(photo_rgb):
        for d, r in ((512, 512), (256, 1024), (1024, 256), (768, 333)):
            theirs = reference_call(ref, est, image, d, r)
            ours = det(image, detect_resolution=d, image_resolution=r, output_type="np")
            np.testing.assert_array_equal(ours, theirs, err_msg=f"{image.shape} {d}/{r}")
            drawn += int(theirs.any())
    assert drawn == 20


def test_grey_and_rgba_inputs_as_the_annotator(ref, photo_rgb):
    est = SharedEstimator(synthetic=True)
    det = DwposeDetector(est)
    grey = Image.fromarray(photo_rgb).convert("L")
    rgba = Image.fromarray(np.dstack([photo_rgb, np.full(photo_rgb.shape[:2], 100, np.uint8)]), "RGBA")
    for image in (grey, rgba, np.asarray(rgba)):
        theirs = reference_call(ref, est, image, 512, 512, output_type="np")
        np.testing.assert_array_equal(det(image, output_type="np"), theirs)
    seen = []
    DwposeDetector(lambda bgr: seen.append(bgr.copy()) or est(bgr))(rgba)
    np.testing.assert_array_equal(seen[0], ref.resize_image(photo_rgb[..., ::-1], 512))  # alpha dropped, BGR


def test_include_flags_upscale_method_and_json(photo_rgb):
    est = SharedEstimator(synthetic=True)
    det = DwposeDetector(est)
    image = sizes_of(photo_rgb)[1]  # 383x511 -> detection 512x704
    full = det(image, output_type="np", image_resolution=1024)
    parts = [det(image, output_type="np", image_resolution=1024, include_body=b, include_hand=h, include_face=f)
             for b, h, f in ((True, False, False), (False, True, False), (False, False, True))]
    assert all(p.any() for p in parts) and all((p != full).any() for p in parts)
    assert not det(image, output_type="np", include_body=False, include_hand=False, include_face=False).any()
    np.testing.assert_array_equal(det(image, output_type="np", image_resolution=1024, hand_and_face=False), parts[0])
    cubic = det(image, output_type="np", image_resolution=1024, upscale_method="INTER_CUBIC")
    small = det(image, output_type="np", image_resolution=512)
    assert cubic.shape == full.shape and (cubic != full).any()
    np.testing.assert_array_equal(cubic, cv2.resize(small, full.shape[1::-1], interpolation=cv2.INTER_CUBIC))
    pil, doc = det(Image.fromarray(image), image_and_json=True, include_hand=False)
    assert isinstance(pil, Image.Image) and pil.size == (704, 512)
    assert doc["canvas_height"] == 383 and doc["canvas_width"] == 511 and len(doc["people"]) == 3
    # the DWPose node writes every part whatever include_* says, in pixels of the input image
    assert any(p["hand_left_keypoints_2d"] for p in doc["people"])
    r = est(resize_image(image[..., ::-1], 512))
    x0 = doc["people"][0]["pose_keypoints_2d"][0]
    assert x0 == pytest.approx(float(r.keypoints[0, 0, 0]) * 511 / 704, rel=1e-6) or x0 == 0.0
    assert isinstance(det(image, output_type=None), np.ndarray) and isinstance(det(Image.fromarray(image),
                                                                                    output_type=None), Image.Image)


def test_errors_and_default_estimator(monkeypatch):
    est = SharedEstimator(synthetic=True)
    det = DwposeDetector(est)
    image = np.zeros((64, 64, 3), np.uint8)
    for kwargs, match in (({"output_type": "jpg"}, "output_type"), ({"upscale_method": "bicubic"}, "upscale_method"),
                          ({"detect_resolution": 10}, "at least 32")):
        with pytest.raises(InputError, match=match):
            det(image, **kwargs)
    with pytest.raises(InputError, match="uint8"):
        det(image.astype(np.float32))
    with pytest.raises(InputError, match="None"):
        det(None)
    with pytest.warns(UserWarning, match="xinsr_stick_scaling"):
        det(image, output_type="np", xinsr_stick_scaling=False)
    made = []  # the default is the annotator's own models: the 'performance' preset (tests/test_presets.py runs it)
    monkeypatch.setattr(annotator_module.Estimator, "from_preset",
                        classmethod(lambda cls, name, **kw: made.append((name, kw)) or est))
    assert DwposeDetector().estimator is est and made[-1] == ("performance", {"runtime": "auto"})
    DwposeDetector(detector="hog", runtime="onnxruntime", threads=1)
    assert made[-1] == ("performance", {"runtime": "onnxruntime", "detector": "hog", "threads": 1})
    with pytest.raises(DwposeEdgeError, match="not both"):
        DwposeDetector(est, detector="hog")
