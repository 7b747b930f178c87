"""mmdeploy end2end detectors: preprocessing from pipeline.json and decoding, against hand-computed cases on
ONNX files of exactly that contract built here, on onnxruntime and OpenVINO."""
from __future__ import annotations

import numpy as np
import pytest
from sdk_models import deploy, detection_pipeline, end2end_onnx, sdk_files, write_zip
from shared_models import runtime_params

from dwpose_edge.detectors import End2EndDetector, YoloxDetector, make_detector
from dwpose_edge.detectors.end2end import prepare, resized_size
from dwpose_edge.errors import ModelFileError
from dwpose_edge.sdk_pipeline import parse_sdk
from dwpose_edge.weights import CACHE_ENV

SQUARE_114 = {"type": "Pad", "pad_to_square": True, "pad_val": {"img": [114.0, 114.0, 114.0]}}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


def _pipeline(**kw):
    return parse_sdk(detection_pipeline(**kw), deploy())


def test_prepare_letterbox_normalize_hand_computed():
    # 100x200 (HxW) BGR image, pixel (10, 20, 30); Resize 640x640 keeping the ratio: scale min(640/200, 640/100)
    # = 3.2 -> 640x320; pad to a square with 114; RGB, mean (1,2,3), std (2,4,8)
    p = _pipeline(pad=SQUARE_114, mean=(1, 2, 3), std=(2, 4, 8), to_rgb=True)
    image = np.empty((100, 200, 3), np.uint8)
    image[:] = (10, 20, 30)
    x, factors = prepare(image, p)
    assert x.shape == (1, 3, 640, 640) and x.dtype == np.float32 and factors == (3.2, 3.2)
    np.testing.assert_allclose(x[0, :, 0, 0], [(30 - 1) / 2, (20 - 2) / 4, (10 - 3) / 8])  # 14.5, 4.5, 0.875
    np.testing.assert_allclose(x[0, :, 319, 639], x[0, :, 0, 0])  # last resized row
    np.testing.assert_allclose(x[0, :, 320, 0], [(114 - 1) / 2, (114 - 2) / 4, (114 - 3) / 8])  # padding
    # BGR kept, mean 0, std 1: the raw pixels (what DWPose's yolox_l.onnx also gets)
    x, _ = prepare(image, _pipeline(pad=SQUARE_114))
    np.testing.assert_array_equal(x[0, :, 0, 0], [10, 20, 30])
    np.testing.assert_array_equal(x[0, :, 639, 639], [114, 114, 114])


def test_prepare_stretch_and_pad_after_normalize():
    image = np.full((100, 200, 3), 50, np.uint8)
    x, factors = prepare(image, _pipeline(size=(416, 416), keep_ratio=False))
    assert x.shape == (1, 3, 416, 416) and factors == (416 / 200, 416 / 100)
    # the data preprocessor's Pad(size_divisor=32) comes after Normalize: it pads normalized zeros
    p = _pipeline(size=(300, 300), mean=(10, 10, 10), std=(4, 4, 4), divisor=32)
    assert p.pads[-1].after_normalize and p.pads[-1].size_divisor == 32
    x, factors = prepare(np.full((100, 150, 3), 50, np.uint8), p)  # scale 2 -> 300x200 -> padded to 320x224
    assert x.shape == (1, 3, 224, 320) and factors == (2.0, 2.0)
    assert (x[0, :, :200, :300] == 10).all() and (x[0, :, 200:] == 0).all() and (x[0, :, :, 300:] == 0).all()


def test_resize_rounds_like_mmcv():
    p = _pipeline(pad=SQUARE_114)
    # 6x7: scale 640/7 = 91.43; 6 * 91.43 = 548.57 rounds to 549 (truncation would give 548)
    assert resized_size((6, 7), p) == (640, 549)
    # non-square target: mmcv's rule min(long/long, short/short), not min(W/w, H/h)
    q = _pipeline(size=(640, 480))
    assert resized_size((100, 400), q) == (640, 160)  # min(640/400, 480/100) = 1.6
    assert resized_size((400, 100), q) == (160, 640)  # same rule whatever the orientation


DETS = np.array([[64, 32, 320, 288, 0.9],      # person -> / 3.2 = (20, 10, 100, 90)
                 [10, 10, 200, 200, 0.95],     # label 1: not a person
                 [100, 100, 200, 200, 0.2],    # below the 0.3 score threshold
                 [600, 300, 700, 330, 0.5],    # partly outside: (187.5, 93.75, 218.75, 103.125) clipped
                 [0, 330, 64, 400, 0.8],       # in the padding only: empty after clipping
                 [0, 0, 0, 0, 0.0]], np.float32)  # mmdeploy's zero padding rows
LABELS = np.array([0, 1, 0, 0, 0, 0])


@pytest.mark.parametrize("runtime", runtime_params(("onnxruntime", "openvino")))
def test_end2end_detector_decodes_hand_computed(tmp_path, runtime):
    path = end2end_onnx(tmp_path / "end2end.onnx", DETS, LABELS)
    det = End2EndDetector(path, _pipeline(pad=SQUARE_114), runtime=runtime)
    boxes, scores = det.detect(np.zeros((100, 200, 3), np.uint8))
    np.testing.assert_allclose(boxes, [[20, 10, 100, 90], [187.5, 93.75, 200, 100]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.9, 0.5], atol=1e-6)
    assert boxes.dtype == np.float32 and scores.dtype == np.float32
    # another person label and a lower threshold: only the label-1 box (score 0.95)
    det = End2EndDetector(path, _pipeline(pad=SQUARE_114), runtime=runtime, score_threshold=0.1, person_label=1)
    boxes, scores = det.detect(np.zeros((100, 200, 3), np.uint8))
    np.testing.assert_allclose(boxes, [[10 / 3.2, 10 / 3.2, 200 / 3.2, 200 / 3.2]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.95], atol=1e-6)


def test_outputs_found_by_rank_when_not_named(tmp_path):
    path = end2end_onnx(tmp_path / "e.onnx", DETS, LABELS, names=("out_boxes", "out_cls"))
    boxes, _ = End2EndDetector(path, _pipeline(pad=SQUARE_114)).detect(np.zeros((100, 200, 3), np.uint8))
    assert len(boxes) == 2


def test_dynamic_input_takes_the_pipeline_size(tmp_path):
    # H, W dynamic, no pad: the 100x200 image goes in as 640x320
    path = end2end_onnx(tmp_path / "dyn.onnx", DETS[:1], LABELS[:1], input_hw=None)
    det = End2EndDetector(path, _pipeline())
    assert det.fixed_hw is None
    boxes, scores = det.detect(np.zeros((100, 200, 3), np.uint8))
    np.testing.assert_allclose(boxes, [[20, 10, 100, 90]], atol=1e-4)


def test_pipeline_that_does_not_fit_the_model_is_an_error(tmp_path):
    path = end2end_onnx(tmp_path / "e.onnx", DETS, LABELS)  # static 640x640
    det = End2EndDetector(path, _pipeline())  # keep_ratio, no pad: a 100x200 image becomes 640x320
    with pytest.raises(ModelFileError, match="takes 640x640 inputs but its pipeline.json makes 640x320"):
        det.detect(np.zeros((100, 200, 3), np.uint8))


def test_contract_errors(tmp_path):
    from test_detect import yolox_like_onnx

    raw = yolox_like_onnx(tmp_path / "raw.onnx", np.zeros((8400, 85), np.float32))
    with pytest.raises(ModelFileError, match="1 outputs; an mmdeploy end2end detector has one input and two"):
        End2EndDetector(raw, _pipeline(pad=SQUARE_114))
    # and an end2end file given where a raw YOLOX one is expected
    e2e = end2end_onnx(tmp_path / "e.onnx", DETS, LABELS)
    with pytest.raises(ModelFileError, match="2 outputs"):
        YoloxDetector(e2e)
    # boxes without a score column
    bad = end2end_onnx(tmp_path / "bad.onnx", DETS, LABELS)
    import onnx

    m = onnx.load(str(bad))
    m.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(DETS[None, :, :4].copy(), "d"))
    m.graph.output[0].type.tensor_type.shape.dim[2].dim_value = 4
    onnx.save(m, str(bad))
    with pytest.raises(ModelFileError, match=r"dets \(1, 6, 4\).*contract is dets \(1,N,5\)"):
        End2EndDetector(bad, _pipeline(pad=SQUARE_114)).detect(np.zeros((100, 200, 3), np.uint8))


def test_make_detector_from_sdk_zip(tmp_path):
    onnx_path = end2end_onnx(tmp_path / "end2end.onnx", DETS, LABELS)
    z = write_zip(tmp_path / "yolox_stub.zip", sdk_files(onnx_path, detection_pipeline(pad=SQUARE_114), deploy()))
    for spec in (str(z), z):
        det = make_detector(spec)
        assert isinstance(det, End2EndDetector)
        boxes, scores = det.detect(np.zeros((100, 200, 3), np.uint8))
        np.testing.assert_allclose(boxes, [[20, 10, 100, 90], [187.5, 93.75, 200, 100]], atol=1e-4)
    with pytest.raises(ModelFileError, match="not found"):
        make_detector(str(tmp_path / "absent.zip"))


def _reference_prepare(image, p):
    """The obvious way: float canvas, pads applied in order (raw or normalised values), normalised whole."""
    import cv2

    nw, nh = resized_size(image.shape[:2], p)
    canvas = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    normalised = False
    mean, std = np.asarray(p.mean, np.float32), np.asarray(p.std, np.float32)
    for step in p.pads:
        if step.after_normalize and not normalised:
            canvas = ((canvas[..., ::-1] if p.to_rgb else canvas) - mean) / std
            normalised = True
        h, w = canvas.shape[:2]
        th, tw = (step.size[1], step.size[0]) if step.size else (h, w)
        if step.to_square:
            th = tw = max(th, tw)
        th, tw = -(-th // step.size_divisor) * step.size_divisor, -(-tw // step.size_divisor) * step.size_divisor
        out = np.full((th, tw, 3), step.value, np.float32)
        out[:h, :w] = canvas
        canvas = out
    if not normalised:
        canvas = ((canvas[..., ::-1] if p.to_rgb else canvas) - mean) / std
    return canvas.transpose(2, 0, 1)[None]


def test_prepare_equals_the_obvious_float_canvas():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (233, 411, 3), np.uint8)
    for p in (_pipeline(pad=SQUARE_114, mean=(1, 2, 3), std=(2, 4, 8), to_rgb=True, divisor=32),
              _pipeline(size=(320, 320), pad={"type": "Pad", "size": [352, 320], "pad_val": 7}, divisor=64,
                        mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)),
              _pipeline(size=(416, 416), keep_ratio=False)):
        x, _ = prepare(image, p)
        np.testing.assert_array_equal(x, _reference_prepare(image, p))


@pytest.mark.parametrize("runtime", runtime_params(("onnxruntime", "openvino")))
def test_nms_inside_the_graph_and_a_dynamic_number_of_boxes(tmp_path, runtime):
    from sdk_models import end2end_nms_onnx

    # NMS at IoU 0.5 in the graph: box 1 overlaps box 0 (IoU 0.81) and goes; box 3 is under its 0.05 floor
    boxes = np.array([[64, 32, 320, 288], [70, 40, 320, 288], [400, 100, 600, 300], [0, 0, 5, 5]], np.float32)
    scores = np.array([0.9, 0.8, 0.6, 0.01], np.float32)
    det = End2EndDetector(end2end_nms_onnx(tmp_path / "nms.onnx", boxes, scores), _pipeline(pad=SQUARE_114),
                          runtime=runtime)
    got, s = det.detect(np.zeros((200, 200, 3), np.uint8))  # scale 3.2, nothing clipped
    np.testing.assert_allclose(got, [[20, 10, 100, 90], [125, 31.25, 187.5, 93.75]], atol=1e-4)
    np.testing.assert_allclose(s, [0.9, 0.6], atol=1e-6)


def test_detector_names():
    from dwpose_edge.detectors import detector_names
    from dwpose_edge.errors import InputError

    assert detector_names() == ["none", "hog", "yolox", "yolox-l-hf-onnx", "yolox-m-humanart", "yolox-tiny-humanart",
                                "yolox-x-humanart"]
    with pytest.raises(InputError, match="'rtmw-l-384x288' is a pose model, not a detector"):
        make_detector("rtmw-l-384x288")
    with pytest.raises(InputError, match="unknown detector 'ssd'.*yolox-tiny-humanart"):
        make_detector("ssd")
