"""ComfyUI POSE_KEYPOINT and OpenPose JSON: layout field by field, agreement with comfyui_controlnet_aux's DWPose
node (restated below from its source), read-back to the same canvas, errors, and the CLI (draw, predict --format)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from dwpose_edge.cli import main
from dwpose_edge.data import DATA_DIR
from dwpose_edge.errors import InputError
from dwpose_edge.openpose import draw_openpose, to_openpose
from dwpose_edge.pose_json import (draw_pose_json, pose_images_from_json, pose_result_from_json, to_comfyui,
                                   to_openpose_json, to_pose_keypoint)
from dwpose_edge.result import PoseResult
from test_openpose import edge_case_persons

AT = np.float32(0.3)


def persons(n=2, seed=0, h=300, w=400) -> PoseResult:
    """Random persons whose scores avoid exactly 0.3 (where the canvas's body rule > 0.3 and the JSON's >= 0.3
    differ); person 1 has no confident hand or face point."""
    rng = np.random.default_rng(seed)
    k = np.stack([rng.uniform(-5, w + 5, (n, 133)), rng.uniform(-5, h + 5, (n, 133))], -1).astype(np.float32)
    s = rng.choice(np.array([0.05, 0.29, 0.31, 0.6, 0.95], np.float32), (n, 133))
    if n > 1:
        s[1, 23:] = 0.1
    return PoseResult(k, s, np.zeros((n, 4), np.float32))


def comfy_node_dict(result: PoseResult, h: int, w: int) -> dict:
    """What comfyui_controlnet_aux's DWPose node writes for these 133 keypoints on an (h, w) image, restated from
    src/custom_controlnet_aux/dwpose/wholebody.py (Wholebody.__call__ + format_result) and
    dwpose/__init__.py (encode_poses_as_dict): OpenPose order with the neck; a point is kept where its
    score >= 0.3; a part with none kept is None, but the body is then 18 Nones; the face gets body points 14
    and 15 appended; kept points are [x, y, 1.0], others [0, 0, 0]."""
    info = np.concatenate([result.keypoints, result.scores[..., None]], -1).astype(np.float32)
    neck = info[:, [5, 6]].mean(axis=1)
    neck[:, 2] = np.logical_and(info[:, 5, 2] > 0.3, info[:, 6, 2] > 0.3)
    info = np.insert(info, 17, neck, axis=1)
    info[:, [1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17]] = info[:, [17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15,
                                                                             2, 1, 4, 3]]

    def part(rows):
        kept = [(x, y) if score >= 0.3 else None for x, y, score in rows]
        return None if all(p is None for p in kept) else kept

    def compress(points):
        if not points:
            return None
        return [v for p in points for v in ([float(p[0]), float(p[1]), 1.0] if p is not None else [0.0, 0.0, 0.0])]

    people = []
    for inst in info:
        body = part(inst[:18]) or [None] * 18
        face = part(inst[24:92])
        if face is not None:
            face += [body[14], body[15]]
        people.append({"pose_keypoints_2d": compress(body), "face_keypoints_2d": compress(face),
                       "hand_left_keypoints_2d": compress(part(inst[92:113])),
                       "hand_right_keypoints_2d": compress(part(inst[113:134]))})
    return {"people": people, "canvas_height": h, "canvas_width": w}


def test_comfyui_layout_field_by_field():
    r = persons()
    r.scores[0, [5, 6]] = [0.9, AT]        # shoulder exactly at 0.3: shown; the neck (both > 0.3) is not
    r.scores[0, 91:112] = 0.1              # left hand: nothing confident -> null
    doc = to_comfyui(r, (300, 400, 3))
    assert doc["canvas_height"] == 300 and doc["canvas_width"] == 400 and len(doc["people"]) == 2
    p0, p1 = doc["people"]
    assert set(p0) == {"pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d"}
    assert [len(p0[f]) for f in ("pose_keypoints_2d", "face_keypoints_2d", "hand_right_keypoints_2d")] == [54, 210, 63]
    assert p0["hand_left_keypoints_2d"] is None and p1["face_keypoints_2d"] is None
    assert p1["hand_left_keypoints_2d"] is None and p1["hand_right_keypoints_2d"] is None
    body = np.array(p0["pose_keypoints_2d"]).reshape(18, 3)
    k = r.keypoints[0]
    assert body[1].tolist() == [0.0, 0.0, 0.0]                                   # neck: one shoulder only at 0.3
    assert body[2].tolist() == [float(k[6, 0]), float(k[6, 1]), 1.0]              # OpenPose 2 = right shoulder
    assert body[5].tolist() == [float(k[5, 0]), float(k[5, 1]), 1.0]              # pixels, exact float32 values
    assert set(body[:, 2]) <= {0.0, 1.0}
    low = np.array(p0["face_keypoints_2d"]).reshape(70, 3)[:68][r.scores[0, 23:91] < AT]
    assert len(low) and not low.any()                                              # zeroed low-score points
    face = np.array(p0["face_keypoints_2d"]).reshape(70, 3)
    assert face[68].tolist() == body[14].tolist() and face[69].tolist() == body[15].tolist()  # eyes R, L
    assert doc == comfy_node_dict(r, 300, 400)
    assert json.loads(json.dumps(doc)) == doc


def test_comfyui_equals_the_dwpose_node_on_edge_cases():
    r = edge_case_persons()
    assert to_comfyui(r, (383, 511)) == comfy_node_dict(r, 383, 511)
    nobody = PoseResult(r.keypoints[:1], np.zeros((1, 133), np.float32), r.boxes[:1])
    doc = to_comfyui(nobody, (383, 511))
    assert doc == comfy_node_dict(nobody, 383, 511) and doc["people"][0]["pose_keypoints_2d"] == [0.0] * 54
    empty = PoseResult(np.zeros((0, 133, 2), np.float32), np.zeros((0, 133), np.float32), np.zeros((0, 4)))
    assert to_comfyui(empty, (10, 20)) == {"people": [], "canvas_height": 10, "canvas_width": 20}


def test_include_flags_and_pose_keypoint_list():
    r = persons()
    for body, hand, face in ((False, True, True), (True, False, True), (True, True, False)):
        p = to_comfyui(r, (300, 400), include_body=body, include_hand=hand, include_face=face)["people"][0]
        assert (p["pose_keypoints_2d"] == [0.0] * 54) == (not body)
        assert (p["hand_right_keypoints_2d"] is None) == (not hand) and (p["face_keypoints_2d"] is None) == (not face)
    full = to_comfyui(r, (300, 400))
    no_body = to_comfyui(r, (300, 400), include_body=False)
    assert no_body["people"][0]["face_keypoints_2d"] == full["people"][0]["face_keypoints_2d"]  # eyes stay
    docs = to_pose_keypoint([r, r[:1]], [(300, 400), (30, 40, 3)])
    assert len(docs) == 2 and docs[1]["canvas_width"] == 40 and len(docs[1]["people"]) == 1
    with pytest.raises(InputError, match="one shape per result"):
        to_pose_keypoint([r], [])
    with pytest.raises(InputError, match="image_shape"):
        to_comfyui(r, (0, 10))


def test_openpose_json_fields():
    r = persons()
    r = PoseResult(r.keypoints, r.scores, r.boxes, np.array([7, 9]))
    doc = to_openpose_json(r, (300, 400))
    assert doc["version"] == 1.3 and doc["canvas_height"] == 300 and doc["canvas_width"] == 400
    p = doc["people"][0]
    assert p["person_id"] == [7] and doc["people"][1]["person_id"] == [9]
    assert all(p[f] == [] for f in ("pose_keypoints_3d", "face_keypoints_3d", "hand_left_keypoints_3d",
                                    "hand_right_keypoints_3d"))
    assert [len(p[f]) for f in ("pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d",
                                "hand_right_keypoints_2d")] == [54, 210, 63, 63]
    body = np.array(p["pose_keypoints_2d"]).reshape(18, 3)
    s, k = r.scores[0], r.keypoints[0]
    assert body[0].tolist() == [float(k[0, 0]), float(k[0, 1]), float(s[0])]       # raw score, not zeroed
    assert body[1, 2] == float((s[5] > AT) and (s[6] > AT))                         # DWPose's neck rule
    face = np.array(p["face_keypoints_2d"]).reshape(70, 3)
    assert face[0].tolist() == [float(k[23, 0]), float(k[23, 1]), float(s[23])]
    assert face[68].tolist() == body[14].tolist() and face[69].tolist() == body[15].tolist()
    assert np.array(p["hand_left_keypoints_2d"]).reshape(21, 3)[:, 2].tolist() == s[91:112].astype(float).tolist()
    assert to_openpose_json(persons(), (3, 4))["people"][0]["person_id"] == [-1]


def test_read_back_draws_the_same_canvas():
    r = persons(3, seed=1)
    ref = draw_openpose(r, (300, 400))
    assert ref.any()
    for doc in (to_comfyui(r, (300, 400)), to_openpose_json(r, (300, 400)), to_openpose(r, (300, 400))):
        doc = json.loads(json.dumps(doc))
        (name, canvas), = draw_pose_json(doc)
        np.testing.assert_array_equal(canvas, ref)
        back, size = pose_result_from_json(doc)
        assert size == (300, 400) and back.keypoints.shape == (3, 133, 2)
        np.testing.assert_array_equal(draw_openpose(back, size), ref)
    back, _ = pose_result_from_json(json.loads(json.dumps(to_openpose_json(r, (300, 400)))))
    keep = np.r_[0:17, 23:133]                                                       # feet are not in the file
    np.testing.assert_array_equal(back.keypoints[:, keep], r.keypoints[:, keep])
    np.testing.assert_array_equal(back.scores[:, keep], r.scores[:, keep])
    assert not back.scores[:, 17:23].any()
    comfy, _ = pose_result_from_json([to_comfyui(r, (300, 400))])  # a one-image POSE_KEYPOINT list
    shown = r.scores >= AT
    shown[:, 17:23] = False
    assert set(np.unique(comfy.scores)) <= {0.0, 1.0} and np.array_equal(comfy.scores == 1, shown)


def test_edited_neck_is_drawn_where_the_file_puts_it():
    r = persons(1)
    r.scores[0, :17] = 0.9
    doc = to_comfyui(r, (300, 400))
    doc["people"][0]["pose_keypoints_2d"][3:5] = [20.0, 30.0]
    (_, canvas), = draw_pose_json(doc, rgb=True)
    assert tuple(canvas[30, 20]) == (255, 85, 0)                                   # neck joint colour, RGB


def test_several_images_and_predict_results():
    r = persons()
    docs = [to_comfyui(r, (300, 400)), to_comfyui(r[:1], (50, 60))]
    images = pose_images_from_json(docs)
    assert [n for n, *_ in images] == ["0000", "0001"] and images[1][3] == (50, 60)
    summary = {"files": {"a/b.jpg": docs[0], "v.mp4": docs}, "format": "comfyui"}
    assert [n for n, *_ in pose_images_from_json(summary)] == ["b", "v_00000", "v_00001"]


@pytest.mark.parametrize("doc, match", [
    ({"people": [{"pose_keypoints_2d": [0.0] * 75}]}, "75 values.*BODY_25"),
    ({"people": [{"pose_keypoints_2d": [0.0] * 54, "face_keypoints_2d": [0.0] * 200}]}, "210 or 204"),
    ({"people": [{"hand_left_keypoints_2d": [0.0] * 60}]}, "expected 63"),
    ({"people": [{"hand_left_keypoints_2d": ["a"] * 63}]}, "finite numbers"),
    ({"people": [{"pose_keypoints_2d": "0 0 0"}]}, "flat list"),
    ({"people": [{"name": "x"}]}, "not a pose JSON person"),
    ({"people": ["x"]}, "must be an object"),
    ({"images": []}, "not a pose JSON"),
    ([1, 2], "holds 2 images"),
    ({"people": [], "canvas_height": 0, "canvas_width": 5}, "positive integers"),
    ({"people": [], "canvas_height": 5}, "positive integers"),
])
def test_bad_json_errors(doc, match):
    with pytest.raises(InputError, match=match):
        pose_result_from_json(doc)


def test_cli_draw(tmp_path, capsys):
    r = persons(2, seed=3)
    one = tmp_path / "pose.json"
    one.write_text(json.dumps([to_comfyui(r, (300, 400))]))
    assert main(["draw", str(one), "--out", str(tmp_path / "canvas.png")]) == 0
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "canvas.png")), draw_openpose(r, (300, 400)))
    two = tmp_path / "two.json"
    two.write_text(json.dumps([to_comfyui(r, (300, 400)), to_comfyui(r[1:], (120, 90))]))
    assert main(["draw", str(two), "--out", str(tmp_path / "many")]) == 0
    assert cv2.imread(str(tmp_path / "many" / "0001.png")).shape == (120, 90, 3)
    assert main(["draw", str(two), "--out", str(tmp_path / "x.png")]) == 2
    op = to_openpose_json(r, (300, 400))
    del op["canvas_height"], op["canvas_width"]                                        # as OpenPose writes it
    (tmp_path / "op.json").write_text(json.dumps(op))
    assert main(["draw", str(tmp_path / "op.json"), "--out", str(tmp_path / "op.png")]) == 2
    assert "--canvas-size" in capsys.readouterr().err
    assert main(["draw", str(tmp_path / "op.json"), "--out", str(tmp_path / "op.png"), "--canvas-size", "300x400"]) == 0
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "op.png")), draw_openpose(r, (300, 400)))
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["draw", str(tmp_path / "bad.json"), "--out", str(tmp_path / "b.png")]) == 2
    assert "not JSON" in capsys.readouterr().err


def test_cli_predict_formats_and_draw_back(tmp_path):
    photo = DATA_DIR / "astronaut.jpg"
    h, w = cv2.imread(str(photo)).shape[:2]
    for fmt in ("comfyui", "openpose-json"):
        out = tmp_path / f"{fmt}.json"
        assert main(["predict", str(photo), "--format", fmt, "--out", str(out), "--draw", str(tmp_path / fmt)]) == 0
        summary = json.loads(out.read_text())
        entry = summary["files"][str(photo)]
        assert summary["format"] == fmt and entry["canvas_height"] == h and entry["canvas_width"] == w
        person = entry["people"][0]
        assert len(person["pose_keypoints_2d"]) == 54 and "foot_keypoints_2d" not in person
        assert ("version" in entry) == (fmt == "openpose-json")
        assert main(["draw", str(out), "--out", str(tmp_path / f"{fmt}_canvas")]) == 0
        drawn = cv2.imread(str(tmp_path / f"{fmt}_canvas" / "astronaut.png"))
        predicted = cv2.imread(str(tmp_path / fmt / "astronaut_openpose.png"))
        assert predicted is not None and drawn.shape == (h, w, 3)
        np.testing.assert_array_equal(drawn, predicted)  # (comfyui: unless a body score is exactly 0.3)
