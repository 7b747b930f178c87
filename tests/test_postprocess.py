import numpy as np

from dwpose_edge.specs import FLIP_INDICES
from dwpose_edge.postprocess import decode_simcc, flip_back, merge_flip, simcc_maximum


def one_hot(n, k, bins, idx, value=1.0):
    out = np.full((n, k, bins), -0.5, np.float32)
    for i in range(n):
        for j in range(k):
            out[i, j, idx[i][j]] = value
    return out


def test_decode_maps_bins_to_image_pixels():
    sx = one_hot(1, 2, 384, [[0, 192]], 0.8)
    sy = one_hot(1, 2, 512, [[0, 256]], 0.6)
    center, scale = np.array([[100.0, 200.0]]), np.array([[150.0, 200.0]])
    kpts, scores = decode_simcc(sx, sy, center, scale, (192, 256))
    # bin 0 -> crop (0,0) -> image top-left of the scaled box; bin 192/256 -> crop center -> box center
    np.testing.assert_allclose(kpts[0], [[25, 100], [100, 200]], atol=1e-4)
    np.testing.assert_allclose(scores[0], [0.6, 0.6])  # min of the two maxima (mmpose), not the mean


def test_non_positive_score_sets_location_to_minus_one():
    sx = one_hot(1, 1, 384, [[100]], -0.1)
    sy = one_hot(1, 1, 512, [[100]], 0.9)
    sx[..., :] = -0.2
    sx[0, 0, 100] = -0.1
    locs, scores = simcc_maximum(sx, sy)
    np.testing.assert_array_equal(locs[0, 0], [-1, -1])
    kpts, _ = decode_simcc(sx, sy, np.array([[0.0, 0.0]]), np.array([[192.0, 256.0]]), (192, 256))
    np.testing.assert_allclose(kpts[0, 0], [-0.5 - 96, -0.5 - 128])


def test_ties_take_first_bin():
    sx = np.zeros((1, 1, 10), np.float32)
    sx[0, 0, [3, 7]] = 1.0
    locs, _ = simcc_maximum(sx, sx)
    assert locs[0, 0, 0] == 3


def test_flip_indices_are_an_involution_that_swaps_sides():
    assert sorted(FLIP_INDICES.tolist()) == list(range(133))
    np.testing.assert_array_equal(FLIP_INDICES[FLIP_INDICES], np.arange(133))
    assert FLIP_INDICES[0] == 0 and FLIP_INDICES[5] == 6 and FLIP_INDICES[91] == 112
    assert FLIP_INDICES[23 + 30] == 23 + 30  # nose tip stays
    assert FLIP_INDICES[23 + 36] == 23 + 45  # outer eye corners swap


def test_flip_back_of_a_mirrored_keypoint():
    # left shoulder (5) at x-bin 100 in the flipped crop is the right shoulder (6) at bin 383-100 originally
    fx = one_hot(1, 133, 384, [[10] * 133])
    fx[0, 5] = -0.5
    fx[0, 5, 100] = 1.0
    fy = one_hot(1, 133, 512, [[50] * 133])
    bx, by = flip_back(fx, fy)
    assert np.argmax(bx[0, 6]) == 383 - 100
    assert np.argmax(by[0, 6]) == 50
    mx, _ = merge_flip((fx, fy), (fx, fy))
    np.testing.assert_allclose(mx[0, 6], (fx[0, 6] + bx[0, 6]) / 2)
