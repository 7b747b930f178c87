"""Whole-image pipeline: CLI predict on folders and videos, batched vs per-person on every runtime, bad inputs."""
import json

import cv2
import numpy as np
import pytest

from dwpose_edge import Estimator
from dwpose_edge.cli import main
from dwpose_edge.data import DATA_DIR
from dwpose_edge.errors import InputError
from dwpose_edge.export.pipeline import export_model
from dwpose_edge.predict import run_predict

BOXES = np.array([[150, 40, 420, 600], [60, 100, 300, 500], [0, 0, 512, 600], [200, 200, 260, 330]], np.float32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_checkpoint):
    out = tmp_path_factory.mktemp("predict_export")
    export_model("dwpose-t", str(tiny_checkpoint), out, targets=["onnx", "openvino", "ncnn"], precisions=["fp32"],
                 log=lambda m: None)
    return out


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime", "openvino", "ncnn"])
def test_batched_equals_per_person(runtime, model_dir, tiny_checkpoint, grace_hopper):
    kw = {"weights": str(tiny_checkpoint)} if runtime == "torch" else {"model_dir": model_dir}
    batched = Estimator("dwpose-t", runtime=runtime, batch_size=16, **kw)(grace_hopper, BOXES)
    single = Estimator("dwpose-t", runtime=runtime, batch_size=1, **kw)
    looped = [single(grace_hopper, b[None]) for b in BOXES]
    np.testing.assert_allclose(batched.keypoints, np.concatenate([r.keypoints for r in looped]), atol=1e-2)
    np.testing.assert_allclose(batched.scores, np.concatenate([r.scores for r in looped]), atol=1e-3)


def write_video(path, frames=4):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (256, 300))
    image = cv2.resize(cv2.imread(str(DATA_DIR / "grace_hopper.jpg")), (256, 300))
    for i in range(frames):
        writer.write(np.roll(image, i * 5, axis=1))
    writer.release()
    return path


def test_cli_folder_and_video(tmp_path, tiny_checkpoint, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("grace_hopper.jpg", "astronaut.jpg"):
        (folder / name).write_bytes((DATA_DIR / name).read_bytes())
    video = write_video(tmp_path / "clip.avi")
    out = tmp_path / "res.json"
    assert main(["predict", str(folder), str(video), "--weights", str(tiny_checkpoint), "--out", str(out),
                 "--draw", str(tmp_path / "draw"), "--format", "openpose"]) == 0
    doc = json.loads(out.read_text())
    assert doc["frames"] == 2 + 4 and doc["persons"] == 6 and doc["format"] == "openpose"
    assert len(doc["files"][str(video)]) == 4
    first = doc["files"][str(folder / "astronaut.jpg")]
    assert first["canvas_width"] == 512 and len(first["people"][0]["pose_keypoints_2d"]) == 54
    drawn = cv2.VideoCapture(str(tmp_path / "draw" / "clip_pose.mp4"))
    assert int(drawn.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    assert (tmp_path / "draw" / "grace_hopper_pose.png").stat().st_size > 10_000
    assert "6 person(s) found" in capsys.readouterr().out


def test_cli_coco_format(tmp_path, tiny_checkpoint):
    out = tmp_path / "coco.json"
    assert main(["predict", str(DATA_DIR / "astronaut.jpg"), "--weights", str(tiny_checkpoint),
                 "--out", str(out)]) == 0
    entries = json.loads(out.read_text())["files"][str(DATA_DIR / "astronaut.jpg")]
    assert len(entries) == 1 and len(entries[0]["keypoints"]) == 51 and entries[0]["bbox"] == [0, 0, 512, 512]


class NobodyDetector:
    def detect(self, image):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)


def test_bad_inputs_and_no_person(tmp_path, tiny_checkpoint, capsys):
    est = Estimator("dwpose-t", weights=str(tiny_checkpoint), detector=NobodyDetector())
    summary = run_predict(est, [str(DATA_DIR / "astronaut.jpg")], progress=False)
    assert summary["persons"] == 0 and summary["files"][str(DATA_DIR / "astronaut.jpg")] == []
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(InputError, match="cannot read image"):
        run_predict(est, [str(broken)], progress=False)
    bad_video = tmp_path / "bad.mp4"
    bad_video.write_bytes(b"\x00" * 1000)
    with pytest.raises(InputError, match="cannot open or decode video"):
        run_predict(est, [str(bad_video)], progress=False)
    with pytest.raises(InputError, match="input not found"):
        run_predict(est, [str(tmp_path / "missing.png")], progress=False)
    assert main(["predict", str(broken), "--weights", str(tiny_checkpoint)]) == 2
    assert "cannot read image" in capsys.readouterr().err


def test_cli_demo_offline_draws_a_validation_image(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--offline"]) == 0
    out = capsys.readouterr().out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["val_000004_pose.png"]
    assert "offline (--offline given)" in out and "dw-tt_ucoco.pth" in out
    assert "000004.jpg: 6 person(s) on their ground-truth boxes" in out
    from dwpose_edge.embedded import embedded_meta

    meta = embedded_meta("dwpose-t")
    assert f"model: the embedded dwpose-t: {meta['note']}" in out
    assert f"whole-body AP {meta['embedded_val_ap']['wholebody']:.3f}" in out
    plain = cv2.imread(str(DATA_DIR / "val" / "images" / "000004.jpg"))
    drawn = cv2.imread(str(tmp_path / "val_000004_pose.png"))
    assert drawn.shape == plain.shape and (np.abs(drawn.astype(int) - plain).max(axis=2) > 60).mean() > 0.005
