import numpy as np
import pytest
import torch

from dwpose_edge import Estimator
from dwpose_edge.errors import InputError, RuntimeUnavailableError, WeightsError
from dwpose_edge.postprocess import merge_flip
from dwpose_edge.preprocess import crop_boxes

BOXES = np.array([[150, 40, 420, 600], [60, 100, 300, 500], [-40, -40, 120, 160]], np.float32)


@pytest.fixture(scope="module")
def est(tiny_checkpoint):
    return Estimator("dwpose-t", weights=str(tiny_checkpoint), runtime="torch")


def test_result_shapes_and_geometry(est, grace_hopper):
    r = est(grace_hopper, BOXES)
    assert r.keypoints.shape == (3, 133, 2) and r.scores.shape == (3, 133)
    assert r.keypoints.dtype == np.float32
    np.testing.assert_array_equal(r.boxes, BOXES)
    # every keypoint lies inside its padded, aspect-fixed crop window
    _, centers, scales = crop_boxes(grace_hopper, BOXES, (192, 256))
    lo, hi = centers - scales / 2, centers + scales / 2
    valid = r.scores > 0
    inside = (r.keypoints >= lo[:, None] - 1e-3) & (r.keypoints <= hi[:, None])
    assert inside[valid].all()
    assert len(r) == 3 and len(list(r)) == 3 and r[1].keypoints.shape == (1, 133, 2)
    body, _ = r.part("left_hand")
    assert body.shape == (3, 21, 2)


def test_batch_size_does_not_change_results(tiny_checkpoint, grace_hopper):
    a = Estimator("dwpose-t", weights=str(tiny_checkpoint), runtime="torch", batch_size=1)(grace_hopper, BOXES)
    b = Estimator("dwpose-t", weights=str(tiny_checkpoint), runtime="torch", batch_size=16)(grace_hopper, BOXES)
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)


def test_reused_crop_buffers_do_not_leak_between_calls(tiny_checkpoint, grace_hopper):
    """The estimator keeps its crop buffers between calls: results of earlier calls must stay intact and
    calls with fewer boxes must not see the previous call's crops."""
    est = Estimator("dwpose-t", weights=str(tiny_checkpoint), runtime="torch", batch_size=2)
    calls = [BOXES, BOXES[2:], BOXES[1:], BOXES[:1]]
    results = [est(grace_hopper, b) for b in calls]
    kept = [r.keypoints.copy() for r in results]
    for boxes, r, k in zip(calls, results, kept):
        fresh = Estimator("dwpose-t", weights=str(tiny_checkpoint), runtime="torch", batch_size=2)(grace_hopper, boxes)
        np.testing.assert_array_equal(r.keypoints, fresh.keypoints)
        np.testing.assert_array_equal(r.keypoints, k)


def test_flip_test_averages_flipped_logits(tiny_checkpoint, grace_hopper):
    est = Estimator("dwpose-t", weights=str(tiny_checkpoint), runtime="torch", flip_test=True)
    crops, _, _ = crop_boxes(grace_hopper, BOXES[:1], (192, 256))
    with torch.inference_mode():
        orig = [t.numpy() for t in est.runtime.model(torch.from_numpy(crops))]
        flipped = [t.numpy() for t in est.runtime.model(torch.from_numpy(crops[..., ::-1].copy()))]
    ref = merge_flip(tuple(orig), tuple(flipped))
    got = est.infer_crops(crops)
    np.testing.assert_allclose(got[0], ref[0], atol=1e-5)
    assert np.abs(got[0] - orig[0]).max() > 1e-2  # flip test changes the logits


def test_no_boxes_means_whole_image(est, grace_hopper):
    r = est(grace_hopper)
    h, w = grace_hopper.shape[:2]
    np.testing.assert_array_equal(r.boxes, [[0, 0, w, h]])
    full = est(grace_hopper, np.array([[0, 0, w, h]], np.float32))
    np.testing.assert_array_equal(r.keypoints, full.keypoints)


def test_zero_boxes_gives_zero_persons(est, grace_hopper):
    r = est(grace_hopper, np.zeros((0, 4), np.float32))
    assert len(r) == 0 and r.keypoints.shape == (0, 133, 2)


def test_weights_are_used(tiny_checkpoint, grace_hopper):
    a = Estimator("dwpose-t", weights=str(tiny_checkpoint), runtime="torch")(grace_hopper)
    b = Estimator("dwpose-t", weights="random", runtime="torch")(grace_hopper)
    assert np.abs(a.scores - b.scores).max() > 1e-2


def test_bad_arguments(tiny_checkpoint, grace_hopper):
    with pytest.raises(ValueError, match="unknown model"):
        Estimator("dwpose-x")
    with pytest.raises(InputError, match="unknown runtime"):
        Estimator("dwpose-t", weights="random", runtime="tensorflow")
    with pytest.raises(InputError, match="fp16 runs on CUDA only"):
        Estimator("dwpose-t", weights="random", runtime="torch", precision="fp16")
    with pytest.raises(WeightsError, match="does not fit dwpose-s"):
        Estimator("dwpose-s", weights=str(tiny_checkpoint), runtime="torch")
    with pytest.raises(InputError, match="uint8"):
        Estimator("dwpose-t", weights="random", runtime="torch")(grace_hopper.astype(np.float32))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised on machines without CUDA")
def test_cuda_requested_without_cuda():
    with pytest.raises(RuntimeUnavailableError, match="cuda"):
        Estimator("dwpose-t", weights="random", runtime="torch", device="cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: torch.cuda.is_available() is False")
@pytest.mark.parametrize("precision, atol", [("fp32", 1.0), ("fp16", 2.0)])
def test_cuda_matches_cpu(tiny_checkpoint, grace_hopper, precision, atol):
    cpu = Estimator("dwpose-t", weights=str(tiny_checkpoint), runtime="torch")(grace_hopper, BOXES)
    gpu = Estimator("dwpose-t", weights=str(tiny_checkpoint), runtime="torch", device="cuda", precision=precision)(grace_hopper, BOXES)
    close = np.linalg.norm(cpu.keypoints - gpu.keypoints, axis=-1) <= atol
    assert close.mean() >= 0.98
