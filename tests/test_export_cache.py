"""The export cache: a failed export leaves nothing behind, and `dwpose-edge cache` lists and prunes it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from dwpose_edge import cli
from dwpose_edge.errors import ModelFileError
from dwpose_edge.export.cache import PARTIAL, cached_export, export_cache_entries, prune_export_cache
from dwpose_edge.embedded import default_onnx
from shared_models import model_dir
from side_venv import child_env

DAY = 86400.0


@pytest.fixture(scope="module")
def real_export():
    """An export folder of the test model in the usual cache (made before `cache` redirects it)."""
    return model_dir("onnxruntime")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DWPOSE_EDGE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "exports"


def _age(path, days: float) -> None:
    t = time.time() - days * DAY
    os.utime(path, (t, t))


def test_failed_export_leaves_no_folder(cache, tmp_path):
    proto = onnx.load(str(default_onnx("dwpose-t")))
    init = next(i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT)
    init.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(init).shape, np.nan, np.float32), init.name))
    bad = tmp_path / "nan.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(ModelFileError, match="NaN/inf weights"):
        cached_export("dwpose-t", str(bad), "openvino", "fp32")
    assert list(cache.iterdir()) == []  # neither the folder nor its staging copy


def test_export_is_written_whole_and_reused(cache):
    folder = cached_export("dwpose-t", None, "onnxruntime", "fp32", threads=1)  # the embedded ONNX: no torch
    assert (folder / "manifest.json").is_file() and [p.name for p in cache.iterdir()] == [folder.name]
    _age(folder, 3)
    assert cached_export("dwpose-t", None, "onnxruntime", "fp32", threads=1) == folder
    assert time.time() - folder.stat().st_mtime < DAY  # opened from the cache: its last use is now


def test_entries_and_prune(real_export, cache, capsys):
    cache.mkdir(parents=True)
    ok = cache / "dwpose-t_ok"
    shutil.copytree(real_export, ok)
    old = cache / "dwpose-t_old"
    shutil.copytree(ok, old)
    doc = json.loads((old / "manifest.json").read_text())
    doc["versions"]["dwpose-edge"] = "0.0.1"
    (old / "manifest.json").write_text(json.dumps(doc))
    (cache / "dwpose-t_unfinished").mkdir()
    (cache / f".dwpose-t_x.1.2{PARTIAL}").mkdir()  # an export still running
    killed = cache / f".dwpose-t_y.3.4{PARTIAL}"
    killed.mkdir()
    _age(killed, 2)
    status = {e.path.name: e.status for e in export_cache_entries()}
    assert status == {"dwpose-t_ok": "ok", "dwpose-t_old": "other version", "dwpose-t_unfinished": "incomplete",
                      f".dwpose-t_x.1.2{PARTIAL}": "partial", f".dwpose-t_y.3.4{PARTIAL}": "partial"}
    assert next(e for e in export_cache_entries() if e.status == "ok").artifacts == ("onnxruntime/fp32",)

    assert cli.main(["cache"]) == 0
    assert "5 export folder(s)" in capsys.readouterr().out
    removed = {e.path.name for e in prune_export_cache()}
    assert removed == {"dwpose-t_old", "dwpose-t_unfinished", killed.name}
    assert sorted(p.name for p in cache.iterdir()) == [f".dwpose-t_x.1.2{PARTIAL}", "dwpose-t_ok"]

    _age(ok, 10)
    assert cli.main(["cache", "--prune", "--unused-days", "30"]) == 0 and ok.is_dir()
    assert cli.main(["cache", "--prune", "--unused-days", "5"]) == 0 and not ok.exists()
    assert cli.main(["cache", "--clear"]) == 0 and list(cache.iterdir()) == []
    assert cli.main(["cache", "--unused-days", "5"]) == 2  # goes with --prune: one line, nothing removed
    assert "goes with --prune" in capsys.readouterr().err


RACE = """
import sys
from dwpose_edge.export.cache import cached_export
print(cached_export("dwpose-t", None, "onnxruntime", "fp32", threads=1))
"""


def test_two_processes_exporting_one_folder(cache, tmp_path):
    """Both get the folder, whole; the staging copies are gone."""
    env = dict(child_env(), DWPOSE_EDGE_CACHE=str(cache.parent))
    procs = [subprocess.Popen([sys.executable, "-c", RACE], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-1000:] for _, err in outs]
    folders = {out.strip().splitlines()[-1] for out, _ in outs}
    assert len(folders) == 1
    assert [p.name for p in cache.iterdir()] == [Path(folders.pop()).name]
    assert [e.status for e in export_cache_entries()] == ["ok"]
