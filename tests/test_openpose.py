import numpy as np

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
