"""Running needs no PyTorch: the device flow, end to end. Folders are exported here (full environment), copied,
and run by tests/lean/ inside cached torch-free venvs holding `pip install .` of this tree: the core alone
(onnxruntime) and the core with the runtime extras (openvino, ncnn). Also the core install's size."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dwpose_edge import Estimator
from dwpose_edge.embedded import default_weights
from dwpose_edge.export.cache import cached_export
from lean_venv import distribution_closure_bytes, lean_python
from side_venv import child_env

LEAN_TESTS = Path(__file__).parent / "lean"
BOXES = [[150.0, 60.0, 400.0, 600.0], [0.0, 0.0, 512.0, 600.0], [250.0, 300.0, 420.0, 590.0]]
CORE_LIMIT_MB = 400  # issue #21's goal for the x86-64 core install (onnxruntime only)


@pytest.fixture(scope="module")
def cases(tmp_path_factory, grace_hopper) -> Path:
    """Exports of the embedded checkpoint made here (torch reference, validated), copied as a user copies
    them to a device, and the keypoints this environment gets from each."""
    root = tmp_path_factory.mktemp("lean")
    boxes = np.array(BOXES, np.float32)
    expected, folders = {}, {}
    result = Estimator()(grace_hopper, boxes)
    expected["default_keypoints"], expected["default_scores"] = result.keypoints, result.scores
    for runtime in ("onnxruntime", "openvino", "ncnn"):
        folder = cached_export("dwpose-t", default_weights("dwpose-t"), runtime, "fp32", threads=1)
        copy = root / f"export-{runtime}"
        shutil.copytree(folder, copy)
        folders[runtime] = str(copy)
        result = Estimator(model_dir=copy, runtime=runtime, threads=1)(grace_hopper, boxes)
        expected[f"{runtime}_keypoints"], expected[f"{runtime}_scores"] = result.keypoints, result.scores
    np.savez(root / "expected.npz", **expected)
    path = root / "cases.json"
    path.write_text(json.dumps({"boxes": BOXES, "folders": folders, "expected": str(root / "expected.npz")}))
    return path


def _run_lean_tests(python: Path, cases: Path, tmp: Path) -> str:
    env = child_env()
    env["DWPOSE_EDGE_LEAN_CASES"] = str(cases)
    env["DWPOSE_EDGE_CACHE"] = str(tmp / "cache")  # nothing exported or downloaded on the device side
    proc = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(LEAN_TESTS),
                           "-o", "addopts=", "--rootdir", str(LEAN_TESTS)], env=env, capture_output=True,
                          text=True, timeout=1800, cwd=tmp)
    assert proc.returncode == 0, f"lean tests failed in {python}:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


def _no_torch(python: Path) -> None:
    proc = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('torch') is None)"],
                          env=child_env(), capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "True", f"{python} can import torch: the lean venv is not torch-free"


def test_core_install_runs_without_torch(cases, tmp_path):
    python = lean_python("")
    _no_torch(python)
    out = _run_lean_tests(python, cases, tmp_path)
    assert " passed" in out and "failed" not in out
    size, dists = distribution_closure_bytes(python)
    print(f"core install: {size / 2**20:.0f} MB in {len(dists)} distributions: {', '.join(dists)}")
    assert "torch" not in dists
    assert {"dwpose-edge", "onnxruntime", "numpy", "opencv-python-headless"} <= set(dists)
    assert size <= CORE_LIMIT_MB * 2**20, f"core install is {size / 2**20:.0f} MB > {CORE_LIMIT_MB} MB: {dists}"


def test_runtime_extras_run_exported_folders_without_torch(cases, tmp_path):
    python = lean_python("openvino,ncnn")
    _no_torch(python)
    out = _run_lean_tests(python, cases, tmp_path)
    assert " passed" in out and "failed" not in out and "skipped" not in out
