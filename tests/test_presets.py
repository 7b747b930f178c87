"""Presets (`Estimator.from_preset`, `--preset`): the official pose model + person detector pairs for real photos,
fetched once from a local HTTP mirror, verified, run end to end; the offline error; the embedded model's note.

The official files cannot be downloaded here, so the mirror (``DWPOSE_EDGE_WEIGHTS_URL`` at tests/http_server.py)
serves stand-ins under the official file names: real models of the right kind made by these tests (a seeded
DWPose-l-384 exported to ONNX by the project's exporter, seeded DWPose-m / -t checkpoints in mmpose's layout, a
YOLOX-contract ONNX and OpenMMLab-style SDK detector zips, tests/sdk_models.py). The registry's pins are pointed at
the stand-ins by monkeypatching ONLY the pinned hash (and pinned size) of the registry entries concerned, for the
test's duration; names, URLs, file names and everything else stay the registry's own. The two HumanArt detector
zips carry no pin (trust on first use), so nothing is patched for them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
from sdk_models import deploy, detection_pipeline, end2end_onnx, sdk_files, write_zip
from test_detect import yolox_like_onnx

from dwpose_edge import Estimator
from dwpose_edge import estimator as estimator_module
from dwpose_edge import presets as P
from dwpose_edge import weights as W
from dwpose_edge.cli import build_parser, main
from dwpose_edge.detectors import End2EndDetector, YoloxDetector
from dwpose_edge.embedded import default_onnx
from dwpose_edge.errors import ChecksumError, InputError, RuntimeUnavailableError, WeightsError

SQUARE_114 = {"type": "Pad", "pad_to_square": True, "pad_val": {"img": [114.0, 114.0, 114.0]}}
IMAGE = np.zeros((480, 640, 3), np.uint8)  # 640 wide: YOLOX's 640x640 letterbox at ratio 1 (canvas px = image px)
# the YOLOX stand-in's two persons (stride-32 anchors at grid (5, 5) and (14, 6), 128 x 256 px), image pixels
YOLOX_BOXES = np.array([[112, 48, 240, 304], [400, 80, 528, 336]], np.float32)
# the SDK stand-ins' detections in network-input pixels: two persons and one below the 0.3 score threshold
SDK_DETS = np.array([[40, 30, 160, 300, 0.9], [200, 40, 330, 310, 0.8], [0, 0, 20, 20, 0.1]], np.float32)


@pytest.fixture(autouse=True)
def mirror(weights_env, monkeypatch, server):
    """An empty weights cache (conftest.weights_env) whose downloads go to the local server's /m mirror."""
    monkeypatch.setenv(W.MIRROR_ENV, server.url("/m"))


def _serve(server, monkeypatch, name: str, data: bytes) -> None:
    """Serve `data` under the registry file name of `name`; a pinned entry gets its pin pointed at `data`
    (hash and, where the registry records one, size: nothing else of the entry changes)."""
    entry = W.get_entry(name)
    if not entry.tofu:
        size = len(data) if entry.size is not None else None
        monkeypatch.setitem(W.REGISTRY, name, dataclasses.replace(entry, sha256=hashlib.sha256(data).hexdigest(),
                                                                  size=size))
    server.routes[f"/m/{entry.filename}"] = (data, "ok")


def _yolox_like(path: Path) -> Path:
    """The yolox_l.onnx contract (tests/test_detect.py's stub) with two persons at grid cells (5, 5) and (14, 6):
    centre ((g + 0.5) * 32), size (4 * 32, 8 * 32)."""
    raw = np.full((8400, 85), -20.0, np.float32)
    raw[:, 4:] = 0.0
    for gx, gy in ((5, 5), (14, 6)):
        j = 6400 + 1600 + gy * 20 + gx
        raw[j, :4] = [0.5, 0.5, np.log(4.0), np.log(8.0)]
        raw[j, 4], raw[j, 5] = 0.9, 0.9
    yolox_like_onnx(path, raw)
    return path


@pytest.fixture(scope="module")
def performance_files(tmp_path_factory) -> dict[str, bytes]:
    """dw-ll_ucoco_384.onnx: a seeded DWPose-l-384 through the project's exporter (~10 s); yolox_l.onnx: the stub."""
    import torch

    from dwpose_edge.export.to_onnx import export_onnx
    from dwpose_edge.models import build_model

    folder = tmp_path_factory.mktemp("performance")
    torch.manual_seed(0)
    pose = export_onnx(build_model("dwpose-l-384"), folder / "dw-ll_ucoco_384.onnx", simplify=False)
    return {"dwpose-l-384-hf-onnx": pose.read_bytes(),
            "yolox-l-hf-onnx": _yolox_like(folder / "yolox_l.onnx").read_bytes()}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, bytes]:
    """dw-tt_ucoco.pth: the shared BatchNorm-calibrated test dwpose-t; dw-mm_ucoco.pth: a seeded dwpose-m (mmpose
    layout, what the official files load as)."""
    import shared_models
    import torch

    from dwpose_edge.models import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "dwpose-m.pth"
    torch.save({"meta": {"what": "tests/test_presets.py"}, "state_dict": build_model("dwpose-m").state_dict()}, path)
    return {"dwpose-t-hf": shared_models.checkpoint().read_bytes(), "dwpose-m-hf": path.read_bytes()}


@pytest.fixture(scope="module")
def sdk_detectors(tmp_path_factory) -> dict[str, bytes]:
    """The HumanArt SDK zips (end2end ONNX + pipeline.json) at their official input sizes."""
    folder = tmp_path_factory.mktemp("sdk")
    zips = {}
    for name, size in (("yolox-m-humanart", 640), ("yolox-tiny-humanart", 416)):
        onnx_path = end2end_onnx(folder / f"{name}.onnx", SDK_DETS, np.zeros(len(SDK_DETS)), input_hw=(size, size))
        files = sdk_files(onnx_path, detection_pipeline(size=(size, size), pad=SQUARE_114), deploy())
        zips[name] = write_zip(folder / f"{name}.zip", files).read_bytes()
    return zips


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/m"


# ----------------------------------------------------------------------------- the table


def test_presets_are_registry_pairs():
    assert list(P.PRESETS) == ["performance", "balanced", "lightweight"]
    expected = {"performance": ("dwpose-l-384", "dw-ll_ucoco_384.onnx", "yolox_l.onnx"),
                "balanced": ("dwpose-m", "dw-mm_ucoco.pth", "yolox_m_8xb8-300e_humanart-c2c7a14a.zip"),
                "lightweight": ("dwpose-t", "dw-tt_ucoco.pth", "yolox_tiny_8xb8-300e_humanart-6f3252f9.zip")}
    for name, preset in P.PRESETS.items():
        pose, det = W.get_entry(preset.weights), W.get_entry(preset.detector)
        assert (preset.model, pose.filename, det.filename) == expected[name]
        assert preset.name == name and preset.runtime == "onnxruntime"
        assert pose.model == preset.model and det.model is None  # a pose file for the model, and a detector
        # pose weights: the Hugging Face yzd-v/DWPose files, pinned to a full sha256
        assert pose.source == "huggingface" and len(pose.sha256) == 64 and not pose.tofu
        assert preset.needs_torch == (name != "performance")
        with pytest.raises(dataclasses.FrozenInstanceError):
            preset.model = "dwpose-l"
    # DWPose's own detector is pinned; OpenMMLab publishes no hash of its SDK zips: trusted on first use
    assert len(W.get_entry("yolox-l-hf-onnx").sha256) == 64
    assert all(W.get_entry(P.PRESETS[n].detector).tofu for n in ("balanced", "lightweight"))
    with pytest.raises(InputError, match="unknown preset 'fast'; presets: performance, balanced, lightweight"):
        Estimator.from_preset("fast")
    with pytest.raises(InputError, match=r"unknown Estimator option\(s\) \['thread'\]"):
        Estimator.from_preset("performance", thread=1)


# ----------------------------------------------------------------------------- end to end


def test_performance_preset_end_to_end(server, monkeypatch, performance_files):
    """Torch-free pair: the pose ONNX runs directly on onnxruntime; boxes from the YOLOX stand-in."""
    for name, data in performance_files.items():
        _serve(server, monkeypatch, name, data)
    monkeypatch.setattr(estimator_module, "_embedded_noted", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = Estimator.from_preset("performance", threads=1, progress=False)
    assert not any("embedded model" in str(w.message) for w in caught)  # the note is for Estimator() only
    assert est.input_size == (288, 384) and est.runtime.name == "onnxruntime"
    assert isinstance(est.detector, YoloxDetector) and est.detector.input_hw == (640, 640)
    result = est(IMAGE)
    np.testing.assert_allclose(result.boxes, YOLOX_BOXES, atol=1e-3)
    assert result.keypoints.shape == (2, 133, 2) and result.scores.shape == (2, 133)
    assert np.isfinite(result.keypoints).all() and np.isfinite(result.scores).all()
    # fetched once: a second preset Estimator reads the verified cache
    assert sorted(server.requests) == sorted(f"/m/{W.get_entry(n).filename}" for n in performance_files)
    for name, data in performance_files.items():
        assert W.cached_path(name).read_bytes() == data
    again = Estimator.from_preset("performance", threads=1, progress=False)
    np.testing.assert_allclose(again(IMAGE).keypoints, result.keypoints, atol=1e-4)
    assert len(server.requests) == 2


def test_performance_preset_refuses_a_file_that_is_not_the_pinned_one(server, monkeypatch, performance_files):
    _serve(server, monkeypatch, "yolox-l-hf-onnx", performance_files["yolox-l-hf-onnx"])
    entry = W.get_entry("dwpose-l-384-hf-onnx")  # the registry's real pin: the stand-in is not that file
    server.routes[f"/m/{entry.filename}"] = (performance_files["dwpose-l-384-hf-onnx"], "ok")
    with pytest.raises(ChecksumError, match="different or damaged file|corrupt or a different file"):
        Estimator.from_preset("performance", threads=1, progress=False)
    assert not W.cached_path(entry).exists()


@pytest.mark.parametrize("name, model", [("balanced", "dwpose-m"), ("lightweight", "dwpose-t")])
def test_checkpoint_presets_end_to_end(server, monkeypatch, checkpoints, sdk_detectors, name, model):
    """DWPose-m / -t checkpoints + HumanArt SDK detectors, here on the torch runtime (an override) to skip the
    one-time ONNX export; test_lightweight_default_runtime_exports_once runs the preset's own runtime."""
    preset = P.PRESETS[name]
    _serve(server, monkeypatch, preset.weights, checkpoints[preset.weights])
    _serve(server, monkeypatch, preset.detector, sdk_detectors[preset.detector])
    est = Estimator.from_preset(name, runtime="torch", threads=1, progress=False)
    assert est.spec.name == model and est.runtime.name == "torch"
    assert isinstance(est.detector, End2EndDetector)
    boxes, _ = est.detector.detect(IMAGE)
    assert len(boxes) == 2  # the third detection is below the score threshold
    result = est(IMAGE)
    np.testing.assert_allclose(result.boxes, boxes, atol=1e-4)
    assert result.keypoints.shape == (2, 133, 2) and np.isfinite(result.keypoints).all()
    # the detector zip was trusted on first use: its sha256 recorded next to it, verified from now on
    recorded = W.recorded_sha256(W.cached_path(preset.detector))
    assert recorded == hashlib.sha256(sdk_detectors[preset.detector]).hexdigest()
    assert len(server.requests) == 2


def test_lightweight_default_runtime_exports_once(server, monkeypatch, checkpoints, sdk_detectors):
    """The preset's own runtime: the checkpoint is exported to ONNX on first use (~5 s here), then reused."""
    preset = P.PRESETS["lightweight"]
    _serve(server, monkeypatch, preset.weights, checkpoints[preset.weights])
    _serve(server, monkeypatch, preset.detector, sdk_detectors[preset.detector])
    est = Estimator.from_preset("lightweight", threads=1, progress=False)
    assert est.runtime.name == "onnxruntime"
    result = est(IMAGE)
    assert result.keypoints.shape == (2, 133, 2) and np.isfinite(result.keypoints).all()
    exports = sorted(p.name for p in (W.cache_dir() / "exports").iterdir())
    assert len(exports) == 1 and exports[0].startswith("dwpose-t_") and exports[0].endswith("_onnxruntime_fp32")
    again = Estimator.from_preset("lightweight", threads=1, progress=False)
    np.testing.assert_allclose(again(IMAGE).keypoints, result.keypoints, atol=1e-4)
    assert sorted(p.name for p in (W.cache_dir() / "exports").iterdir()) == exports and len(server.requests) == 2


# ----------------------------------------------------------------------------- offline, torch missing


@pytest.mark.parametrize("name", list(P.PRESETS))
def test_offline_error_names_every_file_and_where_to_put_it(monkeypatch, name):
    monkeypatch.setenv(W.MIRROR_ENV, _closed_port_url())
    preset = P.PRESETS[name]
    with pytest.raises(WeightsError) as info:
        Estimator.from_preset(name, progress=False)
    message = str(info.value)
    assert f"preset {name!r} needs 2 file(s)" in message
    for reg in (preset.weights, preset.detector):
        entry = W.get_entry(reg)
        assert entry.filename in message and entry.url in message  # the official URL to fetch it from
        assert f"put it at {W.cached_path(entry)}" in message  # and where it goes
        assert not W.cached_path(entry).exists()
    # an override that replaces a file leaves it out
    with pytest.raises(WeightsError) as info:
        Estimator.from_preset(name, detector="none", progress=False)
    assert "needs 1 file(s)" in str(info.value) and W.get_entry(preset.detector).filename not in str(info.value)


def test_checkpoint_preset_without_torch_says_so_before_downloading(server, monkeypatch):
    real = P.importlib.util.find_spec
    monkeypatch.setattr(P.importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a))
    with pytest.raises(RuntimeUnavailableError, match=r"dw-mm_ucoco.pth.*pip install 'dwpose-edge\[export\]'.*"
                                                      r"preset 'performance', which runs without it"):
        Estimator.from_preset("balanced", progress=False)
    assert server.requests == []


# ----------------------------------------------------------------------------- the embedded model's note


def test_embedded_default_says_once_it_is_not_for_real_photos(monkeypatch):
    monkeypatch.setattr(estimator_module, "_embedded_noted", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Estimator(threads=1)
        Estimator(threads=1)
        Estimator(weights=str(default_onnx("dwpose-t")), threads=1)  # weights given: no note
    notes = [w for w in caught if "embedded model" in str(w.message)]
    assert len(notes) == 1 and notes[0].category is UserWarning
    text = str(notes[0].message)
    assert "generated people only" in text and 'Estimator.from_preset("balanced")' in text
    assert "--preset balanced" in text and notes[0].filename == __file__  # points at the caller's line
    # weights given: no note, even first thing in a process
    monkeypatch.setattr(estimator_module, "_embedded_noted", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Estimator(weights=str(default_onnx("dwpose-t")), threads=1)
    assert not any("embedded model" in str(w.message) for w in caught)


# ----------------------------------------------------------------------------- command line


def test_cli_preset(server, monkeypatch, checkpoints, sdk_detectors, tmp_path, capsys):
    preset = P.PRESETS["lightweight"]
    _serve(server, monkeypatch, preset.weights, checkpoints[preset.weights])
    _serve(server, monkeypatch, preset.detector, sdk_detectors[preset.detector])
    image, out = tmp_path / "photo.png", tmp_path / "res.json"
    import cv2

    cv2.imwrite(str(image), IMAGE)
    assert main(["predict", str(image), "--preset", "lightweight", "--runtime", "torch", "--threads", "1",
                 "--out", str(out)]) == 0
    assert "2 person(s) found" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["persons"] == 2 and len(doc["files"][str(image)]) == 2
    # --preset picks the model and weights: given with either it is refused, before anything is fetched
    server.requests.clear()
    assert main(["predict", str(image), "--preset", "balanced", "--weights", "dwpose-m"]) == 2
    assert "--preset balanced chooses the model and its weights: drop --weights" in capsys.readouterr().err
    assert server.requests == []
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", "x.jpg", "--preset", "fast"])
    args = build_parser().parse_args(["eval", "--preset", "performance", "--ann", "a.json", "--images", "i"])
    assert args.preset == "performance" and args.model is None and args.runtime is None
    # without --preset the defaults are what they were
    args = build_parser().parse_args(["predict", "x.jpg"])
    assert (args.preset, args.model, args.runtime, args.detector) == (None, None, None, None)


def test_cli_eval_preset_fetches_no_detector(server, monkeypatch, checkpoints, tmp_path, capsys):
    from dwpose_edge.data import DATA_DIR

    preset = P.PRESETS["lightweight"]
    _serve(server, monkeypatch, preset.weights, checkpoints[preset.weights])
    assert main(["eval", "--preset", "lightweight", "--runtime", "torch", "--threads", "1", "--ann",
                 str(DATA_DIR / "val" / "annotations.json"), "--images", str(DATA_DIR / "val" / "images"),
                 "--max-images", "1"]) == 0
    assert "whole" in capsys.readouterr().out.lower()
    assert server.requests == [f"/m/{W.get_entry(preset.weights).filename}"]  # ground-truth boxes: no detector
