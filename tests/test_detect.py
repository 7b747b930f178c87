"""Person detection: YOLOX decoding/NMS on an ONNX file with the released yolox_l.onnx contract."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dwpose_edge.detectors import WholeImage, YoloxDetector, decode_yolox, letterbox, make_detector, nms
from dwpose_edge.errors import InputError, ModelFileError


def test_nms_hand_computed():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    # box3 (0.95) first; box0 IoU with box3 = 90/100 = 0.9 -> dropped; box1 IoU with box3 = 72/118 = 0.61 -> dropped
    assert nms(boxes, scores, 0.45).tolist() == [3, 2]
    assert nms(boxes, scores, 0.95).tolist() == [3, 0, 1, 2]


def test_decode_grid_and_strides():
    raw = np.zeros((8400, 85), np.float32)
    # anchor 0: stride 8, grid (0,0); anchor 6400 + 41: stride 16, grid (1, 1) (40 columns)
    raw[0, :4] = [0.5, 0.25, np.log(2.0), 0.0]
    raw[6400 + 41, :4] = [0.0, 0.0, 0.0, np.log(3.0)]
    raw[:, 4] = 0.5
    raw[:, 5] = 0.8
    boxes, scores = decode_yolox(raw, (640, 640))
    # xy = (p + grid) * stride, wh = exp(p) * stride
    np.testing.assert_allclose(boxes[0], [4 - 8, 2 - 4, 4 + 8, 2 + 4], atol=1e-5)
    np.testing.assert_allclose(boxes[6441], [16 - 8, 16 - 24, 16 + 8, 16 + 24], atol=1e-5)
    np.testing.assert_allclose(scores[:, 0], 0.4)
    assert scores.shape == (8400, 80)


def test_letterbox_top_left_pad_114():
    img = np.full((100, 200, 3), 7, np.uint8)
    canvas, ratio = letterbox(img)
    assert ratio == 3.2 and canvas.shape == (640, 640, 3)
    assert (canvas[:320] == 7).all() and (canvas[320:] == 114).all()


def yolox_like_onnx(path, raw):
    """ONNX with the yolox_l.onnx contract: `images` 1x3x640x640 -> 1x8400x85 (constant + 0 * mean(images))."""
    const = numpy_helper.from_array(raw[None].astype(np.float32), "raw")
    zero = numpy_helper.from_array(np.zeros((1,), np.float32), "zero")
    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["raw", "z"], ["output"])]
    graph = helper.make_graph(nodes, "yolox_stub",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8400, 85])],
                              initializer=[const, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_yolox_detector_end_to_end(tmp_path, runtime):
    raw = np.full((8400, 85), -20.0, np.float32)
    raw[:, :4] = 0
    raw[:, 4:] = 0.0
    # a person at stride 32, grid (5, 3): centre = (p + grid) * stride
    j = 6400 + 1600 + 3 * 20 + 5
    raw[j, :4] = [0.5, 0.5, np.log(4.0), np.log(8.0)]   # centre (176, 112), size 128 x 256 in the 640 canvas
    raw[j, 4], raw[j, 5] = 0.9, 0.9                      # person score 0.81
    raw[j + 1, :4] = [0.4, 0.5, np.log(4.0), np.log(8.0)]  # near-duplicate, lower score -> NMS
    raw[j + 1, 4], raw[j + 1, 5] = 0.8, 0.8
    raw[100, :4] = [0, 0, 1, 1]
    raw[100, 4], raw[100, 5] = 0.5, 0.5                  # 0.25: passes the 0.1 candidate bar, not the 0.3 one
    raw[200, 4], raw[200, 6] = 0.9, 0.9                  # class 1 (bicycle): never a person
    det = YoloxDetector(yolox_like_onnx(tmp_path / "yolox.onnx", raw), runtime=runtime)
    image = np.zeros((320, 640, 3), np.uint8)            # ratio 1.0: canvas pixels = image pixels
    boxes, scores = det.detect(image)
    # y1 = 112 - 128 = -16 is clipped to the image
    np.testing.assert_allclose(boxes, [[176 - 64, 0, 176 + 64, 112 + 128]], atol=1e-3)
    np.testing.assert_allclose(scores, [0.81], atol=1e-6)


def test_detector_choices(tmp_path):
    assert isinstance(make_detector("none"), WholeImage)
    with pytest.raises(InputError, match="unknown detector"):
        make_detector("ssd")
    bad = tmp_path / "two_outputs.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ModelFileError):
        make_detector(str(bad))
