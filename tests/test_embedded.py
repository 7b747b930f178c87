"""The embedded default: fp16 packing, sha256-checked loading, the embedded validation set."""
from __future__ import annotations

import json

import cv2

import numpy as np
import pytest
import torch

from dwpose_edge import embedded
from dwpose_edge.errors import ChecksumError, WeightsError
from dwpose_edge.models import build_model, load_checkpoint
from dwpose_edge.train.embed import pack_fp16


def test_embedded_validation_set_is_complete():
    from dwpose_edge.evaluation.annotations import load_wholebody_instances

    ann, images = embedded.embedded_val_set()
    doc = json.loads(ann.read_text())
    assert len(doc["images"]) == 140 and all((images / im["file_name"]).is_file() for im in doc["images"])
    instances = load_wholebody_instances(ann, images)
    assert len(instances) == 362  # every person has labelled body keypoints
    # whole-body ground truth: every part is labelled on some persons
    vis = np.stack([i["visible"] for i in instances]) > 0
    for lo, hi in ((0, 17), (17, 23), (23, 91), (91, 112), (112, 133)):
        assert vis[:, lo:hi].any(axis=1).mean() > 0.3


def test_wheel_ships_the_embedded_files_and_stays_small(tmp_path):
    """The built wheel holds the validation set and the embedded weights (checkpoint and ONNX), < 40 MB
    (fp16 checkpoint 11 MB for torch and training, fp32 ONNX 21 MB for every other runtime)."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    from lean_venv import clean_copy

    src = clean_copy(tmp_path / "src")  # a clean checkout's files: no stale build/ folder in the wheel
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(src),
                    "-w", str(tmp_path)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("dwpose_edge-*.whl")
    assert wheel.stat().st_size < 40e6
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "dwpose_edge/data/val/annotations.json" in names and sum(n.startswith("dwpose_edge/data/val/images/")
                                                                    for n in names) == 140
    for file, _ in [*embedded.EMBEDDED.values(), *embedded.EMBEDDED_ONNX.values()]:
        assert f"dwpose_edge/data/{file}" in names
    assert {"dwpose_edge/runtimes/openvino_runtime.py", "dwpose_edge/train/configs/synth_control_t.toml",
            "dwpose_edge/detectors/hog.py", "dwpose_edge/evaluation/metric.py", "dwpose_edge/train/synth/coco.py",
            "dwpose_edge/bench/coldstart.py"} <= names
    # the benchmark's pytest files are for a checkout, not for devices
    assert not [n for n in names if n.startswith("dwpose_edge/bench/") and n.rsplit("/", 1)[1].startswith(
        ("test_", "conftest"))]


def test_pack_fp16_halves_the_file_and_keeps_the_model(tiny_checkpoint, tmp_path):
    dst = tmp_path / "packed.pth"
    sha = pack_fp16(tiny_checkpoint, dst, "dwpose-t", {"note": "test"})
    raw = torch.load(dst, map_location="cpu", weights_only=True)
    floats = [v for v in raw["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert raw["meta"]["note"] == "test" and len(raw["meta"]["source_sha256"]) == 64 and len(sha) == 64
    assert dst.stat().st_size < 0.55 * tiny_checkpoint.stat().st_size
    ref = load_checkpoint(build_model("dwpose-t"), tiny_checkpoint).eval()
    half = load_checkpoint(build_model("dwpose-t"), dst).eval()
    assert all(p.dtype == torch.float32 for p in half.parameters())
    x = torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        (ax, ay), (bx, by) = ref(x), half(x)
    for a, b in ((ax, bx), (ay, by)):  # fp16 weights: ~1e-3 relative rounding, compounded over ~70 layers
        rel = float((a - b).abs().max() / a.abs().max())
        assert 0 < rel < 0.02, rel


def test_embed_records_the_ap_on_the_embedded_set(tiny_checkpoint, tmp_path, capsys):
    from dwpose_edge.hashing import sha256_file
    from dwpose_edge.train.embed import main

    dst = tmp_path / "w.pth"
    assert main([str(tiny_checkpoint), "--out", str(dst), "--note", "tiny"]) == 0
    meta = torch.load(dst, map_location="cpu", weights_only=True)["meta"]
    ap = meta["embedded_val_ap"]
    assert meta["note"] == "tiny" and set(ap) == {"body", "foot", "face", "lefthand", "righthand", "wholebody"}
    assert all(0.0 <= v <= 1.0 for v in ap.values())
    assert f'"dwpose-t": ("w.pth", "{sha256_file(dst)}")' in capsys.readouterr().out


def test_default_weights_checks_sha256(tiny_checkpoint, tmp_path, monkeypatch):
    dst = tmp_path / "w.pth"
    sha = pack_fp16(tiny_checkpoint, dst, "dwpose-t")
    monkeypatch.setattr(embedded, "DATA_DIR", tmp_path)
    monkeypatch.setitem(embedded.EMBEDDED, "dwpose-t", ("w.pth", sha))
    assert embedded.default_weights("dwpose-t") == dst
    data = bytearray(dst.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dst.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="modified or corrupted"):
        embedded.default_weights("dwpose-t")
    dst.unlink()
    with pytest.raises(WeightsError, match="missing"):
        embedded.default_weights("dwpose-t")


def test_models_without_embedded_weights_say_what_to_pass():
    with pytest.raises(WeightsError, match="weights='dwpose-l'"):
        embedded.default_weights("dwpose-l")


@pytest.mark.skipif("dwpose-t" not in embedded.EMBEDDED, reason="no embedded dwpose-t in this build")
def test_estimator_without_arguments_runs_the_embedded_model(grace_hopper):
    from dwpose_edge import Estimator

    est = Estimator()
    result = est(grace_hopper)
    same = Estimator(weights=embedded.default_weights("dwpose-t"))(grace_hopper)
    assert len(result) == 1 and np.array_equal(result.keypoints, same.keypoints)
    # on generated people (its training domain) most body keypoints land near the truth
    from dwpose_edge.evaluation.annotations import load_wholebody_instances

    inst = [i for i in load_wholebody_instances(*embedded.embedded_val_set()) if i["image_path"].endswith("000004.jpg")]
    image = cv2.imread(inst[0]["image_path"])
    got = est(image, np.stack([i["bbox_xyxy"] for i in inst]))
    gt = np.stack([i["keypoints"][:17] for i in inst])
    vis = np.stack([i["visible"][:17] for i in inst]) > 0
    diag = np.stack([np.hypot(*(i["bbox_xyxy"][2:] - i["bbox_xyxy"][:2])) for i in inst])
    err = np.linalg.norm(got.keypoints[:, :17] - gt, axis=-1) / diag[:, None]
    assert len(inst) == 6 and (err[vis] < 0.1).mean() > 0.6


@pytest.mark.skipif("dwpose-t" not in embedded.EMBEDDED, reason="no embedded dwpose-t in this build")
def test_embedded_model_reproduces_its_recorded_ap():
    """The AP written into the file when it was packed (train/embed.py) is what it scores here, and it is
    a trained model: its body AP is well above an untrained network's 0."""
    from dwpose_edge import Estimator
    from dwpose_edge.evaluation.metric import evaluate_estimator

    meta = embedded.embedded_meta("dwpose-t")
    recorded = meta["embedded_val_ap"]
    got = evaluate_estimator(Estimator(threads=1), *embedded.embedded_val_set(), progress=False)
    for part, ap in recorded.items():
        assert got[part]["AP"] == pytest.approx(ap, abs=2e-3), part
    assert recorded["body"] > 0.05
