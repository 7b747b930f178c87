"""The device side of the documented flow, in a venv without PyTorch: the embedded default, an official-layout
ONNX file, the CLI, and folders exported in the full environment and copied here, per installed runtime."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

import dwpose_edge
from dwpose_edge import Estimator
from dwpose_edge.data import DATA_DIR
from dwpose_edge.embedded import default_onnx
from dwpose_edge.errors import RuntimeUnavailableError

IMAGE = DATA_DIR / "grace_hopper.jpg"


def _image() -> np.ndarray:
    image = cv2.imread(str(IMAGE))
    assert image is not None
    return image


def _expected(cases: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(cases["expected"])
    return data[f"{name}_keypoints"], data[f"{name}_scores"]


def test_torch_is_absent():
    assert importlib.util.find_spec("torch") is None
    import dwpose_edge.cli  # noqa: F401  everything the CLI imports at start loads without torch

    assert "torch" not in sys.modules


def test_installed_version_is_the_package_version():
    """pyproject reads the version from dwpose_edge/version.py: the wheel's metadata and the module agree."""
    assert importlib.metadata.version("dwpose-edge") == dwpose_edge.__version__


def test_embedded_default_runs_without_torch(cases):
    result = Estimator()(_image(), np.array(cases["boxes"], np.float32))
    keypoints, scores = _expected(cases, "default")
    assert result.keypoints.shape == keypoints.shape == (len(cases["boxes"]), 133, 2)
    # same ONNX file, same onnxruntime build as the full environment: the same keypoints
    np.testing.assert_allclose(result.keypoints, keypoints, atol=1e-3)
    np.testing.assert_allclose(result.scores, scores, atol=1e-5)
    assert "torch" not in sys.modules


def test_official_layout_onnx(cases, tmp_path):
    """A file with the released DWPose/mmdeploy layout (no dwpose_edge metadata) loads by path."""
    proto = onnx.load(str(default_onnx("dwpose-t")))
    del proto.metadata_props[:]
    path = tmp_path / "dw-tt_ucoco.onnx"
    onnx.save(proto, str(path))
    result = Estimator(weights=str(path))(_image(), np.array(cases["boxes"], np.float32))
    keypoints, _ = _expected(cases, "default")
    np.testing.assert_allclose(result.keypoints, keypoints, atol=1e-3)


def test_cli_predict(tmp_path):
    exe = Path(sys.executable).parent / "dwpose-edge"
    out = tmp_path / "out.json"
    proc = subprocess.run([str(exe), "predict", str(IMAGE), "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert "1 person(s) found" in proc.stdout
    assert len(json.dumps(data)) > 1000 and "keypoints" in json.dumps(data)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "ncnn"])
def test_exported_folder(cases, runtime):
    """`dwpose-edge export` output of the full environment, copied here, gives the same keypoints."""
    package = {"onnxruntime": "onnxruntime", "openvino": "openvino", "ncnn": "ncnn"}[runtime]
    if importlib.util.find_spec(package) is None:
        with pytest.raises(RuntimeUnavailableError, match=rf"pip install 'dwpose-edge\[{runtime}\]'"):
            Estimator(model_dir=cases["folders"][runtime], runtime=runtime)
        return
    est = Estimator(model_dir=cases["folders"][runtime], runtime=runtime, threads=1)
    result = est(_image(), np.array(cases["boxes"], np.float32))
    keypoints, scores = _expected(cases, runtime)
    np.testing.assert_allclose(result.keypoints, keypoints, atol=1e-3)
    np.testing.assert_allclose(result.scores, scores, atol=1e-4)


def test_torch_paths_name_their_extra(tmp_path):
    with pytest.raises(RuntimeUnavailableError, match=r"pip install 'dwpose-edge\[torch\]'"):
        Estimator(runtime="torch")
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"not read: the missing torch is reported first")
    with pytest.raises(RuntimeUnavailableError, match=r"pip install 'dwpose-edge\[export\]'"):
        Estimator(weights=str(ckpt), runtime="onnxruntime")


@pytest.mark.parametrize("argv, extra", [
    (["train", "plain", "--ann", "a.json", "--images", "."], "train"),
    (["export", "--weights", "model.pth", "--out", "x"], "export"),
])
def test_cli_torch_commands_give_the_install_hint(argv, extra, tmp_path):
    (tmp_path / "model.pth").write_bytes(b"never read: the missing torch is reported first")
    exe = Path(sys.executable).parent / "dwpose-edge"
    proc = subprocess.run([str(exe), *argv], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode != 0
    assert f"pip install 'dwpose-edge[{extra}]'" in proc.stderr
    assert "Traceback" not in proc.stderr
