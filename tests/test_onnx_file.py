"""ONNX file checks: files vouched for by their hash skip the parse (and the 0.45 s `onnx` import), a changed
file is checked again, and a runtime still names what is wrong with a bad file that was vouched for."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest

from dwpose_edge.embedded import EMBEDDED_ONNX, default_onnx
from dwpose_edge.errors import ModelFileError
from dwpose_edge.hashing import sha256_file
from dwpose_edge.onnx_file import check_onnx_file, ensure_checked, vouch
from dwpose_edge.runtimes.onnxruntime_runtime import OnnxRuntime
from shared_models import installed, model_dir
from side_venv import child_env


@pytest.mark.parametrize("model", sorted(EMBEDDED_ONNX))
def test_embedded_onnx_passes_the_full_check(model):
    """default_onnx vouches for the shipped file by its pinned sha256; the file itself passes every check."""
    proto = check_onnx_file(default_onnx(model))
    assert len(proto.graph.output) == 2


def test_vouched_file_skips_the_check_until_it_changes(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf" * 100)
    with pytest.raises(ModelFileError, match="not a valid ONNX model"):
        ensure_checked(bad)
    vouch(bad)
    ensure_checked(bad)  # trusted: not parsed
    with pytest.raises(ModelFileError, match="not a valid ONNX model"):
        ensure_checked(bad, n_outputs=1)  # vouched as a pose model only
    bad.write_bytes(b"not a protobuf" * 100)  # same bytes, rewritten: another file version (ctime)
    with pytest.raises(ModelFileError, match="not a valid ONNX model"):
        ensure_checked(bad)


def test_a_checked_file_is_trusted_and_a_copy_is_not(tmp_path):
    good = tmp_path / "good.onnx"
    shutil.copyfile(default_onnx("dwpose-t"), good)
    check_onnx_file(good)
    ensure_checked(good)
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="not a valid ONNX model"):
        ensure_checked(copy)


RUNTIMES = ["onnxruntime", pytest.param("openvino", marks=pytest.mark.skipif(not installed("openvino"),
                                                                             reason="openvino is not installed"))]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_runtime_names_what_is_wrong_with_a_vouched_bad_file(runtime, tmp_path):
    """A manifest rewritten with a truncated file's hash: the runtime's load fails, then the full check names why."""
    bad = tmp_path / "model.onnx"
    bad.write_bytes(default_onnx("dwpose-t").read_bytes()[:4096])
    vouch(bad)
    if runtime == "onnxruntime":
        open_it = lambda: OnnxRuntime(bad)  # noqa: E731
    else:
        from dwpose_edge.runtimes.openvino_runtime import OpenVinoRuntime

        open_it = lambda: OpenVinoRuntime(bad)  # noqa: E731
    with pytest.raises(ModelFileError, match="not a valid ONNX model"):
        open_it()


CHILD = """
import sys
from dwpose_edge import Estimator
source = {"model_dir": sys.argv[2]} if sys.argv[1] == "model_dir" else {"weights": sys.argv[2]}
Estimator("dwpose-t", runtime="onnxruntime", threads=1, **source)
print("onnx" in sys.modules)
"""


def open_in_child(how: str, path, cache) -> subprocess.CompletedProcess:
    """Open `path` as model_dir or weights in a fresh interpreter with its own cache; prints whether onnx loaded."""
    return subprocess.run([sys.executable, "-c", CHILD, how, str(path)], capture_output=True, text=True,
                          env=dict(child_env(), DWPOSE_EDGE_CACHE=str(cache)))


def loads_onnx(how: str, path, cache) -> bool:
    proc = open_in_child(how, path, cache)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1] == "True"


def test_export_folder_is_parsed_once_per_machine(tmp_path):
    """A copied export folder: the first process checks its ONNX in full (loading `onnx`) and records the hash in
    the cache; the next process trusts the same bytes without `onnx`; a changed file (rehashed manifest) is new."""
    folder, cache = tmp_path / "folder", tmp_path / "cache"
    shutil.copytree(model_dir("onnxruntime"), folder)
    assert loads_onnx("model_dir", folder, cache)
    assert len(list((cache / "checked_onnx").glob("*_outputs2.json"))) == 1
    assert not loads_onnx("model_dir", folder, cache)
    # a poisoned model behind a manifest rewritten to match it: not trusted, checked in full, refused
    doc = json.loads((folder / "manifest.json").read_text())
    art = next(a for a in doc["artifacts"] if a["runtime"] == "onnxruntime")
    proto = onnx.load(str(folder / art["files"]["model"]))
    init = next(i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT and i.raw_data)
    init.raw_data = np.full(len(init.raw_data) // 4, np.nan, np.float32).tobytes()
    onnx.save(proto, str(folder / art["files"]["model"]))
    art["sha256"]["model"] = sha256_file(folder / art["files"]["model"])
    (folder / "manifest.json").write_text(json.dumps(doc))
    proc = open_in_child("model_dir", folder, cache)
    assert proc.returncode != 0 and "NaN/inf weights" in proc.stderr


def test_users_onnx_file_is_parsed_once_per_machine(tmp_path):
    """An .onnx given as weights (e.g. the official DWPose files): checked in full the first time, then trusted by
    its sha256 with the crop size found then; a record of another package version is not trusted."""
    path, cache = tmp_path / "dwpose-t.onnx", tmp_path / "cache"
    shutil.copyfile(default_onnx("dwpose-t"), path)  # a copy: not the embedded file, no vouching by path
    assert loads_onnx("weights", path, cache)
    (record,) = (cache / "checked_onnx").glob("*_pose.json")
    assert json.loads(record.read_text())["input_size"] == [192, 256]
    assert not loads_onnx("weights", path, cache)
    record.write_text(json.dumps({"input_size": [192, 256], "version": "0.0.0-other"}))
    assert loads_onnx("weights", path, cache)
