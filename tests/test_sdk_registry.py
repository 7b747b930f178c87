"""The OpenMMLab SDK zips of the registry (detectors and RTMW): trust-on-first-use downloads from a local HTTP
mirror, the sha256 record, pins, and the files loading from their registry names."""
from __future__ import annotations

import dataclasses
import hashlib
import logging

import numpy as np
import pytest
from sdk_models import deploy, detection_pipeline, end2end_onnx, pose_pipeline, sdk_files, write_zip

from dwpose_edge import weights as W
from dwpose_edge.detectors import End2EndDetector, make_detector
from dwpose_edge.embedded import default_onnx
from dwpose_edge.errors import ChecksumError, WeightsError
from dwpose_edge.runtimes.pose_onnx import pose_onnx
from dwpose_edge.specs import RTMW_SPECS

SQUARE_114 = {"type": "Pad", "pad_to_square": True, "pad_val": {"img": [114.0, 114.0, 114.0]}}
SDK_NAMES = {"yolox-tiny-humanart": "rtmposev1/onnx_sdk/yolox_tiny_8xb8-300e_humanart-6f3252f9.zip",
             "yolox-m-humanart": "rtmposev1/onnx_sdk/yolox_m_8xb8-300e_humanart-c2c7a14a.zip",
             "yolox-x-humanart": "rtmposev1/onnx_sdk/yolox_x_8xb8-300e_humanart-a39d44ed.zip",
             "rtmw-m-256x192": "rtmw/onnx_sdk/rtmw-dw-l-m_simcc-cocktail14_270e-256x192_20231122.zip",
             "rtmw-l-256x192": "rtmw/onnx_sdk/rtmw-dw-x-l_simcc-cocktail14_270e-256x192_20231122.zip",
             "rtmw-l-384x288": "rtmw/onnx_sdk/rtmw-dw-x-l_simcc-cocktail14_270e-384x288_20231122.zip"}


@pytest.fixture(autouse=True)
def mirror(weights_env, monkeypatch, server):
    """An empty weights cache (conftest.weights_env) whose downloads go to the local server's /m mirror."""
    monkeypatch.setenv(W.MIRROR_ENV, server.url("/m"))


@pytest.fixture(scope="module")
def det_zip(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("det")
    dets = np.array([[64, 32, 320, 288, 0.9], [0, 0, 10, 10, 0.1]], np.float32)
    onnx_path = end2end_onnx(folder / "end2end.onnx", dets, np.zeros(2))
    return write_zip(folder / "d.zip", sdk_files(onnx_path, detection_pipeline(pad=SQUARE_114), deploy())).read_bytes()


def test_sdk_entries():
    for name, tail in SDK_NAMES.items():
        e = W.get_entry(name)
        assert e.url == "https://download.openmmlab.com/mmpose/v1/projects/" + tail
        assert (e.kind, e.source, e.tofu, e.sha256, e.size) == ("zip", "openmmlab", True, None, None)
        assert e.model == (name if name.startswith("rtmw") else None)
    assert sorted(RTMW_SPECS) == sorted(W._ONNX_VARIANTS) == sorted(n for n in SDK_NAMES if n.startswith("rtmw"))
    # a hash and trust on first use contradict each other; no hash needs tofu
    with pytest.raises(ValueError, match="trust-on-first-use entry has no sha256"):
        dataclasses.replace(W.get_entry("yolox-m-humanart"), sha256="0" * 64)
    with pytest.raises(ValueError, match="sha256 is required"):
        dataclasses.replace(W.get_entry("yolox-m-humanart"), tofu=False)


def test_trust_on_first_use(server, det_zip, caplog):
    entry = W.get_entry("yolox-tiny-humanart")
    digest = hashlib.sha256(det_zip).hexdigest()
    server.routes[f"/m/{entry.filename}"] = (det_zip, "ok")
    with caplog.at_level(logging.WARNING, logger="dwpose_edge.weights"):
        path = W.resolve_weights("yolox-tiny-humanart", progress=False)
    assert path == W.cached_path(entry) and path.read_bytes() == det_zip
    record = path.with_name(path.name + ".sha256")
    assert record.read_text() == f"{digest}  {entry.filename}\n" and W.recorded_sha256(path) == digest
    assert f"sha256={digest!r}" in caplog.text and "trusted on first download" in caplog.text
    assert W.cached_sha256(path) == digest
    # later uses: from the cache, verified against the record (in a new process: _VERIFIED cleared)
    W._VERIFIED.clear()
    assert W.resolve_weights("yolox-tiny-humanart") == path and len(server.requests) == 1
    # the cached file changes (seen by the next process): refused, naming the record; never deleted
    path.write_bytes(det_zip[:100] + bytes([det_zip[100] ^ 0xFF]) + det_zip[101:])
    W._VERIFIED.clear()
    with pytest.raises(ChecksumError, match=f"but {digest} was recorded at its first download.*Delete both"):
        W.resolve_weights("yolox-tiny-humanart")
    assert path.exists()
    # file gone, record kept, the server now serves other bytes: refused against the record, nothing cached
    path.unlink()
    server.routes[f"/m/{entry.filename}"] = (det_zip + b"x", "ok")
    with pytest.raises(ChecksumError, match="recorded at the first download of yolox-tiny-humanart"):
        W.resolve_weights("yolox-tiny-humanart", progress=False)
    assert not path.exists() and W.recorded_sha256(path) == digest
    # the user's own pin replaces the record: right pin passes, wrong pin is refused
    assert W.resolve_weights("yolox-tiny-humanart", sha256=hashlib.sha256(det_zip + b"x").hexdigest(),
                             progress=False).read_bytes() == det_zip + b"x"
    path.unlink()
    with pytest.raises(ChecksumError, match=digest[:8]):
        W.resolve_weights("yolox-tiny-humanart", sha256=digest[:8], progress=False)


def test_hand_placed_file_is_recorded_on_first_use(det_zip, caplog, server):
    path = W.cached_path("yolox-m-humanart")
    path.parent.mkdir(parents=True)
    path.write_bytes(det_zip)
    with caplog.at_level(logging.WARNING, logger="dwpose_edge.weights"):
        assert W.resolve_weights("yolox-m-humanart") == path
    assert "first use of a cached copy" in caplog.text and server.requests == []
    assert W.recorded_sha256(path) == hashlib.sha256(det_zip).hexdigest()
    path.with_name(path.name + ".sha256").write_text("not a digest\n")
    W._VERIFIED.clear()
    with pytest.raises(WeightsError, match="record .* is malformed"):
        W.resolve_weights("yolox-m-humanart")


def test_detector_from_registry_name(server, det_zip):
    server.routes[f"/m/{W.get_entry('yolox-x-humanart').filename}"] = (det_zip, "ok")
    det = make_detector("yolox-x-humanart")
    assert isinstance(det, End2EndDetector)
    boxes, scores = det.detect(np.zeros((100, 200, 3), np.uint8))
    np.testing.assert_allclose(boxes, [[20, 10, 100, 90]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.9], atol=1e-6)
    assert make_detector("yolox-x-humanart").pipeline == det.pipeline and len(server.requests) == 1


def test_pose_model_from_registry_name(server, tmp_path):
    z = write_zip(tmp_path / "p.zip", sdk_files(default_onnx("dwpose-t"), pose_pipeline(), deploy("PoseDetector")))
    server.routes[f"/m/{W.get_entry('rtmw-m-256x192').filename}"] = (z.read_bytes(), "ok")
    src = pose_onnx("rtmw-m-256x192")
    assert (src.model, src.input_size, src.path.name) == ("rtmw-m-256x192", (192, 256), "end2end.onnx")
    with pytest.raises(Exception, match="person detector, not a pose model"):
        pose_onnx("yolox-m-humanart")
    with pytest.raises(Exception, match="PyTorch checkpoint, not an ONNX file"):
        pose_onnx("dwpose-t")


def test_estimator_from_rtmw_name(server, tmp_path, grace_hopper):
    from dwpose_edge.errors import InputError
    from dwpose_edge.estimator import Estimator

    z = write_zip(tmp_path / "p.zip", sdk_files(default_onnx("dwpose-t"), pose_pipeline(), deploy("PoseDetector")))
    server.routes[f"/m/{W.get_entry('rtmw-m-256x192').filename}"] = (z.read_bytes(), "ok")
    est = Estimator(model="rtmw-m-256x192")  # weights: the model's registry zip, downloaded once
    assert est.input_size == (192, 256) and len(server.requests) == 1
    result = est(grace_hopper)
    assert result.keypoints.shape == (1, 133, 2)
    with pytest.raises(InputError, match="hold the model rtmw-m-256x192; pass model='rtmw-m-256x192'"):
        Estimator(weights="rtmw-m-256x192")
    for runtime, precision in (("torch", "fp32"), ("ncnn", "fp32"), ("onnxruntime", "fp16")):
        with pytest.raises(InputError, match=f"runs from its ONNX file only.*got {runtime}/{precision}"):
            Estimator(model="rtmw-m-256x192", runtime=runtime, precision=precision)
    assert len(server.requests) == 1
