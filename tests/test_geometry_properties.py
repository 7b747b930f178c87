"""Property-based checks of the crop / decode geometry on random image sizes, boxes and aspect ratios.

A keypoint mapped into the crop with the affine `crop_boxes` uses (`warp_matrix` of its centers/scales),
written as an ideal one-hot or peaked SimCC vector and decoded by `decode_simcc` lands where it started,
within half a SimCC bin: 0.5 / split_ratio = 0.25 crop px, i.e. 0.25 * scale / input_size image px.
"""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dwpose_edge.specs import BBOX_PADDING, NUM_KEYPOINTS, SIMCC_SPLIT_RATIO
from dwpose_edge.postprocess import decode_simcc
from dwpose_edge.preprocess import crop_boxes, warp_matrix

SETTINGS = settings(max_examples=200, deadline=None)
INPUT_SIZES = [(192, 256), (288, 384)]  # (W, H) of dwpose-t/s/m/l and dwpose-l-384


@st.composite
def scenes(draw):
    """An image size, one box whose centre lies in the image (any size, any aspect ratio) and an input size."""
    w = draw(st.integers(1, 4000))
    h = draw(st.integers(1, 4000))
    cx = draw(st.floats(0.5, max(w - 0.5, 0.5)))
    cy = draw(st.floats(0.5, max(h - 0.5, 0.5)))
    longest = 4.0 * max(w, h)
    bw = 2 ** draw(st.floats(-1, np.log2(longest)))
    bh = 2 ** draw(st.floats(-1, np.log2(longest)))
    box = np.array([[cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]], np.float32)
    return (h, w), box, draw(st.sampled_from(INPUT_SIZES)), draw(st.integers(0, 2**31 - 1))


def crop_geometry(image_hw, box, input_size):
    """centers, scales as crop_boxes computes them (on a blank image of that size) and the image->crop affine."""
    _, centers, scales = crop_boxes(np.zeros((*image_hw, 3), np.uint8), box, input_size)
    return centers, scales, warp_matrix(centers[0], scales[0], input_size)


def keypoints_in_window(mat, input_size, seed):
    """133 image points whose crop coordinates fall inside the SimCC range [0, size - 1/(2*split)]."""
    rng = np.random.default_rng(seed)
    top = np.asarray(input_size, np.float64) - 0.5 / SIMCC_SPLIT_RATIO
    crop_pts = rng.uniform(0, 1, (NUM_KEYPOINTS, 2)) * top
    inv = np.vstack([mat, [0, 0, 1]])
    return (np.linalg.inv(inv) @ np.hstack([crop_pts, np.ones((NUM_KEYPOINTS, 1))]).T).T[:, :2]


def to_crop(mat, points):
    return points @ mat[:, :2].T + mat[:, 2]


def one_hot(bins, n_bins):
    out = np.zeros((1, NUM_KEYPOINTS, n_bins), np.float32)
    out[0, np.arange(NUM_KEYPOINTS), bins] = 1.0
    return out


def peaked(centers_in_bins, n_bins, sigma):
    """Gaussian SimCC rows peaking at sub-bin positions (what a trained head emits), max value below 1."""
    grid = np.arange(n_bins, dtype=np.float64)
    rows = np.exp(-((grid[None] - centers_in_bins[:, None]) ** 2) / (2 * sigma**2)) * 0.9
    return rows[None].astype(np.float32)


def bound(scales, input_size, points):
    """Half a bin in image px, plus float32 rounding of image coordinates."""
    half_bin = 0.5 / SIMCC_SPLIT_RATIO * scales[0] / np.asarray(input_size, np.float64)
    return half_bin + 1e-3 + 2e-7 * np.abs(points)


@SETTINGS
@given(scenes())
def test_one_hot_roundtrip_within_half_a_bin(scene):
    image_hw, box, input_size, seed = scene
    centers, scales, mat = crop_geometry(image_hw, box, input_size)
    points = keypoints_in_window(mat, input_size, seed)
    bins = np.rint(to_crop(mat, points) * SIMCC_SPLIT_RATIO).astype(int)
    w, h = input_size
    assert (bins >= 0).all() and (bins[:, 0] < w * 2).all() and (bins[:, 1] < h * 2).all()
    keypoints, scores = decode_simcc(one_hot(bins[:, 0], 2 * w), one_hot(bins[:, 1], 2 * h), centers, scales,
                                     input_size)
    assert (np.abs(keypoints[0] - points) <= bound(scales, input_size, points)).all()
    np.testing.assert_array_equal(scores, 1.0)


@SETTINGS
@given(scenes(), st.floats(0.5, 6.0))
def test_peaked_roundtrip_within_half_a_bin(scene, sigma):
    image_hw, box, input_size, seed = scene
    centers, scales, mat = crop_geometry(image_hw, box, input_size)
    points = keypoints_in_window(mat, input_size, seed)
    in_bins = to_crop(mat, points) * SIMCC_SPLIT_RATIO
    w, h = input_size
    keypoints, scores = decode_simcc(peaked(in_bins[:, 0], 2 * w, sigma), peaked(in_bins[:, 1], 2 * h, sigma),
                                     centers, scales, input_size)
    assert (np.abs(keypoints[0] - points) <= bound(scales, input_size, points)).all()
    assert (scores > 0.9 * np.exp(-1 / (8 * sigma**2)) - 1e-6).all()  # the peak is at most half a bin away


@SETTINGS
@given(scenes())
def test_window_is_padded_box_with_model_aspect(scene):
    """The crop window contains the box padded by 1.25, has the model's W/H ratio and is tight on one axis;
    the affine maps the window's corners onto the crop's corners."""
    image_hw, box, input_size, _ = scene
    centers, scales, mat = crop_geometry(image_hw, box, input_size)
    size = box[0, 2:] - box[0, :2]
    w, h = input_size
    assert np.isclose(scales[0, 0] / scales[0, 1], w / h, rtol=1e-5)
    assert (scales[0] >= size * BBOX_PADDING * (1 - 1e-5)).all()
    assert np.isclose(scales[0] / (size * BBOX_PADDING), 1.0, rtol=1e-5).any()
    corners = np.array([centers[0] - scales[0] / 2, centers[0] + scales[0] / 2], np.float64)
    tol = 1e-4 * max(1.0, float(np.abs(corners).max() / scales[0].min()))
    np.testing.assert_allclose(to_crop(mat, corners), [[0, 0], [w, h]], atol=tol * max(w, h))
