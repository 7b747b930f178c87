import cv2
import numpy as np
import pytest

from dwpose_edge.errors import InputError
from dwpose_edge.specs import MEAN_RGB, STD_RGB
from dwpose_edge.preprocess import CropWorkspace, boxes_to_center_scale, crop_boxes, warp_matrix

SIZE = (192, 256)


def test_center_scale_padding_and_aspect():
    c, s = boxes_to_center_scale(np.array([[10, 20, 110, 420], [0, 0, 300, 100]], np.float32), SIZE)
    np.testing.assert_allclose(c, [[60, 220], [150, 50]])
    # tall box: h*1.25 = 500 kept, w = 0.75*500; wide box: w*1.25 = 375 kept, h = 375/0.75
    np.testing.assert_allclose(s, [[375, 500], [375, 500]])


def test_warp_maps_box_center_to_crop_center_and_scale():
    mat = warp_matrix(np.array([100.0, 200.0], np.float32), np.array([150.0, 200.0], np.float32), SIZE)
    pts = np.array([[100, 200, 1], [25, 100, 1], [175, 300, 1]], np.float64)
    np.testing.assert_allclose(pts @ mat.T, [[96, 128], [0, 0], [192, 256]], atol=1e-3)


def test_crop_content_matches_manual_resample(grace_hopper):
    box = np.array([[150, 100, 350, 450]], np.float32)
    crops, centers, scales = crop_boxes(grace_hopper, box, SIZE)
    assert crops.shape == (1, 3, 256, 192) and crops.dtype == np.float32
    # Undo normalisation and compare with a direct cv2.resize of the same region.
    rgb = crops[0].transpose(1, 2, 0) * STD_RGB + MEAN_RGB
    x0, y0 = centers[0] - scales[0] / 2
    x1, y1 = centers[0] + scales[0] / 2
    region = grace_hopper[int(round(y0)):int(round(y1)), max(0, int(round(x0))):int(round(x1))]
    assert x0 >= 0 and y1 <= grace_hopper.shape[0]
    ref = cv2.resize(region, SIZE, interpolation=cv2.INTER_AREA)[..., ::-1].astype(np.float32)
    assert np.abs(rgb - ref).mean() < 6.0  # same content, different resampling filter
    assert np.abs(rgb - ref[::-1]).mean() > 20.0  # and clearly not the upside-down content


def test_workspace_crops_equal_fresh_crops_and_reuse_the_buffer(grace_hopper):
    boxes = np.array([[150, 100, 350, 450], [0, 0, 200, 300], [-40, 200, 120, 640]], np.float32)
    ws = CropWorkspace()
    first, _, _ = crop_boxes(grace_hopper, boxes, SIZE, ws)
    np.testing.assert_array_equal(first, crop_boxes(grace_hopper, boxes, SIZE)[0])
    again, _, _ = crop_boxes(grace_hopper, boxes[1:2], SIZE, ws)  # fewer boxes: a view of the same buffer
    assert again.shape == (1, 3, 256, 192) and np.shares_memory(again, first)
    np.testing.assert_array_equal(again, crop_boxes(grace_hopper, boxes[1:2], SIZE)[0])
    other, _, _ = crop_boxes(grace_hopper, boxes, (288, 384), ws)  # another input size: new buffers
    assert other.shape == (3, 3, 384, 288) and not np.shares_memory(other, first)
    np.testing.assert_array_equal(other, crop_boxes(grace_hopper, boxes, (288, 384))[0])


def test_rgb_order(grace_hopper):
    """mmpose feeds RGB: a pure-blue BGR image must land in the third (B) channel after normalising."""
    img = np.zeros((100, 100, 3), np.uint8)
    img[..., 0] = 255  # blue in BGR
    crops, _, _ = crop_boxes(img, np.array([[30, 30, 70, 70]], np.float32), SIZE)
    center = crops[0, :, 128, 96]
    np.testing.assert_allclose(center, (np.array([0, 0, 255]) - MEAN_RGB) / STD_RGB, rtol=1e-6)


def test_partly_outside_box_is_zero_padded():
    img = np.full((100, 100, 3), 200, np.uint8)
    crops, _, _ = crop_boxes(img, np.array([[-50, -50, 50, 50]], np.float32), SIZE)
    pad_value = (0 - MEAN_RGB) / STD_RGB
    np.testing.assert_allclose(crops[0, :, 0, 0], pad_value, rtol=1e-6)
    np.testing.assert_allclose(crops[0, :, 255, 191], (200 - MEAN_RGB) / STD_RGB, rtol=1e-6)


@pytest.mark.parametrize("image, match", [
    (np.zeros((10, 10), np.uint8), "grayscale"),
    (np.zeros((10, 10, 4), np.uint8), "BGRA"),
    (np.zeros((0, 10, 3), np.uint8), "empty"),
    (np.zeros((10, 10, 3), np.float32), "uint8"),
    ([[1, 2, 3]], "numpy array"),
])
def test_bad_images(image, match):
    with pytest.raises(InputError, match=match):
        crop_boxes(image, np.array([[0, 0, 5, 5]], np.float32), SIZE)


@pytest.mark.parametrize("boxes, match", [
    ([[0, 0, np.nan, 5]], "NaN"),
    ([[0, 0, 0, 5]], "zero area"),
    ([[5, 5, 1, 1]], "inverted"),
    ([[20, 20, 30, 30]], "outside"),
    ([[-30, 0, -10, 5]], "outside"),
    ([[0, 0, 5]], "shape"),
])
def test_bad_boxes(boxes, match):
    with pytest.raises(InputError, match=match):
        crop_boxes(np.zeros((10, 10, 3), np.uint8), np.array(boxes, np.float32), SIZE)


def test_noncontiguous_and_readonly_image(grace_hopper):
    box = np.array([[100, 50, 400, 550]], np.float32)
    ref, _, _ = crop_boxes(grace_hopper, box, SIZE)
    view = np.ascontiguousarray(grace_hopper)
    view.flags.writeable = False
    strided = np.zeros((600, 1024, 3), np.uint8)
    strided[:, ::2] = grace_hopper
    for img in (view, strided[:, ::2]):
        out, _, _ = crop_boxes(img, box, SIZE)
        np.testing.assert_array_equal(out, ref)


def test_normalize_is_the_broadcast_formula_bit_for_bit():
    from dwpose_edge.preprocess import MEAN_RGB, STD_RGB, normalize

    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, (3, 20, 14, 3), dtype=np.uint8)
    for x in (crops, crops[:, ::2, 1:]):  # contiguous and strided views
        ref = ((x[..., ::-1].astype(np.float32) - MEAN_RGB) / STD_RGB).transpose(0, 3, 1, 2)
        out = normalize(x)
        assert out.dtype == np.float32 and out.flags.c_contiguous and np.array_equal(out, ref)
