"""The checkpoint layouts users download load weights-only, give exactly the plain weights' keypoints,
and anything beyond the allow-list is refused before it runs.

Replicas are written by the REAL mmengine 0.10.7 / mmpose 1.3.2 (tests/mmpose_ref/write_checkpoints.py in
the venv of tests/mmpose_ref/make_venv.sh; numpy 1 pickles, cached by a hash of the scripts, ~450 MB,
~15 s when cold): Hugging Face yzd-v/DWPose's layout (pth_transfer.py; also --two_dis as dw-tt_ucoco.pth,
and HistoryBuffer as mmengine 0.10.7 pickles it), OpenMMLab's (publish_model.py), both also in the legacy
non-zip format, and poisoned variants. The allow-list checks at the end need no venv.
"""
from __future__ import annotations

import _compat_pickle
import io
import json
import pickletools
import subprocess
import sys
import types
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

from dwpose_edge import Estimator
from dwpose_edge.data import DATA_DIR
from dwpose_edge.errors import WeightsError
from dwpose_edge.models import build_model, load_checkpoint
from dwpose_edge.models.checkpoint import HISTORY_BUFFER, HistoryBufferStandIn, allowed_globals, read_checkpoint
from mmpose_venv import REF_DIR, cached_output, mmpose_python  # noqa: F401 (fixture)
from side_venv import child_env

WRITER = REF_DIR / "write_checkpoints.py"
IMAGE = DATA_DIR / "grace_hopper.jpg"
BOXES = np.array([[60.5, 20.25, 470.75, 599.0], [150.0, 60.0, 360.0, 320.0]], np.float32)

# Hugging Face's pickle scan of yzd-v/DWPose's dw-*_ucoco*.pth files (the issue, verbatim).
HF_SCAN = {"torch._utils._rebuild_tensor_v2", "torch.FloatStorage", "torch.LongStorage", "collections.OrderedDict",
           "mmengine.logging.history_buffer.HistoryBuffer", "numpy.ndarray", "numpy.dtype",
           "numpy.core.multiarray._reconstruct", "numpy.core.multiarray.scalar", "_codecs.encode"}
# layout file -> the plain state-dict file holding the same weights
LAYOUTS = {"hf.pth": "plain.pth", "hf_legacy.pth": "plain.pth", "hf_mmengine_0_10.pth": "plain.pth",
           "openmmlab.pth": "plain.pth", "openmmlab_legacy.pth": "plain.pth", "hf_two_dis.pth": "plain_two_dis.pth"}
# poisoned file -> the refused global the error must name. Pickle protocol 2 (torch.save's) writes
# subprocess.call under its Python 2 module name, commands.call.
POISONED = {"poison_message_hub.pth": "GLOBAL commands.call", "poison_message_hub_legacy.pth": "GLOBAL commands.call",
            "poison_ema_state_dict.pth": "GLOBAL commands.call", "poison_meta.pth": "GLOBAL posix.system",
            "poison_getattr.pth": f"refused getattr({HISTORY_BUFFER}, '__init__')"}
MARKER_ENV = "DWPOSE_EDGE_PAYLOAD_MARKER"


@pytest.fixture(scope="session")
def replicas(mmpose_python: str) -> Path:
    """The folder of replica checkpoints, written once per version of the writer scripts and venv."""
    return cached_output(mmpose_python, WRITER, [], [WRITER, REF_DIR / "mmpose_dump.py"], "", "mmpose-checkpoints")


def pickle_globals(path: Path) -> set[str]:
    """module.name of every GLOBAL in a .pth's pickles, with Python 2 names mapped as unpicklers do."""
    found: set[str] = set()

    def scan(data: bytes) -> None:
        stream = io.BytesIO(data)
        while stream.tell() < len(data):
            try:
                for op, arg, _ in pickletools.genops(stream):
                    if op.name == "GLOBAL":
                        module, name = arg.split(" ")
                        module, name = _compat_pickle.NAME_MAPPING.get(
                            (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
                        found.add(f"{module}.{name}")
            except ValueError:  # legacy format: raw storage bytes follow the last pickle
                return

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            scan(z.read(next(n for n in z.namelist() if n.endswith("/data.pkl"))))
    else:
        scan(path.read_bytes())
    return found


@lru_cache(maxsize=None)
def _keypoints(weights: str) -> tuple[np.ndarray, np.ndarray]:
    result = Estimator(model="dwpose-t", weights=weights, runtime="torch", threads=1)(_image(), BOXES)
    return result.keypoints, result.scores


@lru_cache(maxsize=1)
def _image() -> np.ndarray:
    import cv2

    return cv2.imread(str(IMAGE))


# ----------------------------------------------------------------------------- the replicas are faithful


def test_replicas_have_the_released_layouts(replicas):
    info = json.loads((replicas / "info.json").read_text())
    assert info["mmengine"] == "0.10.7" and info["numpy"].startswith("1.")
    hf_keys = ["meta", "state_dict", "message_hub", "param_schedulers", "ema_state_dict"]
    for name in ("hf.pth", "hf_legacy.pth", "hf_mmengine_0_10.pth", "hf_two_dis.pth"):
        assert info["top_level_keys"][name] == hf_keys, name
    for name in ("openmmlab.pth", "openmmlab_legacy.pth"):
        assert info["top_level_keys"][name] == ["meta", "state_dict", "param_schedulers"], name
    # what Hugging Face's scan lists for the released files, name for name
    assert pickle_globals(replicas / "hf.pth") == HF_SCAN
    assert pickle_globals(replicas / "hf_two_dis.pth") == HF_SCAN
    assert pickle_globals(replicas / "hf_legacy.pth") == HF_SCAN
    assert pickle_globals(replicas / "hf_mmengine_0_10.pth") == HF_SCAN | {"builtins.getattr"}
    no_hub = HF_SCAN - {"mmengine.logging.history_buffer.HistoryBuffer", "numpy.core.multiarray.scalar"}
    assert pickle_globals(replicas / "openmmlab.pth") == no_hub
    assert zipfile.is_zipfile(replicas / "hf.pth") and not zipfile.is_zipfile(replicas / "hf_legacy.pth")
    assert not zipfile.is_zipfile(replicas / "openmmlab_legacy.pth")
    # dw-tt_ucoco.pth is ~68 MB: student EMA weights + the raw student and teacher in ema_state_dict
    assert 60e6 < info["sizes"]["hf.pth"] < 70e6


# ----------------------------------------------------------------------------- loading


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layout_gives_the_plain_keypoints(replicas, layout):
    plain = replicas / LAYOUTS[layout]
    want = load_checkpoint(build_model("dwpose-t"), plain).state_dict()
    got = load_checkpoint(build_model("dwpose-t"), replicas / layout).state_dict()
    assert [k for k in want if not torch.equal(want[k], got[k])] == []
    kp, sc = _keypoints(str(replicas / layout))
    kp0, sc0 = _keypoints(str(plain))
    assert np.array_equal(kp, kp0) and np.array_equal(sc, sc0)
    # trained-looking weights spread the keypoints over the box (an all-equal answer proves nothing)
    assert kp0.shape == (2, 133, 2) and np.ptp(kp0[0], axis=0).min() > 50


def test_state_dict_is_taken_not_ema_state_dict(replicas):
    ckpt = read_checkpoint(replicas / "hf.pth")
    raw = {k[len("module.student."):]: v for k, v in ckpt["ema_state_dict"].items()
           if k.startswith("module.student.")}
    assert set(raw) == set(ckpt["state_dict"])
    differ = [k for k, v in raw.items() if v.is_floating_point() and not torch.equal(v, ckpt["state_dict"][k])]
    assert len(differ) > 100  # EMAHook's swap: state_dict = EMA weights, ema_state_dict = raw weights
    assert "steps" in ckpt["ema_state_dict"] and any(k.startswith("module.teacher.") for k in ckpt["ema_state_dict"])
    result = Estimator(model="dwpose-t", weights=raw, runtime="torch", threads=1)(_image(), BOXES)
    kp, _ = _keypoints(str(replicas / "hf.pth"))
    assert np.abs(result.keypoints - kp).max() > 1.0  # taking ema_state_dict would move the keypoints


def test_message_hub_reads_into_plain_data(replicas):
    ckpt = read_checkpoint(replicas / "hf.pth")
    hub = ckpt["message_hub"]
    assert sorted(hub) == ["log_scalars", "resumed_keys", "runtime_info"]
    loss = hub["log_scalars"]["train/loss"]
    assert type(loss) is HistoryBufferStandIn
    assert sorted(loss.state) == ["_count_history", "_log_history", "max_length"]
    assert loss.state["_log_history"].shape == (5,) and loss.state["_log_history"].dtype == np.float64
    assert hub["log_scalars"]["train/time"].state["_count_history"].tolist() == [64] * 5
    with pytest.raises(AttributeError, match="read-only"):
        loss.anything = 1
    info = hub["runtime_info"]
    assert info["best_score"] == 0.662 and isinstance(info["best_score"], np.float64)
    assert info["dataset_meta"]["sigmas"].dtype == np.float32 and len(info["dataset_meta"]["sigmas"]) == 133
    assert ckpt["meta"]["dataset_meta"]["dataset_name"] == "coco_wholebody"
    assert [s["begin"] for s in ckpt["param_schedulers"]] == [0, 135]
    # mmengine >= 0.8 pickles the statistics methods by getattr: read as their names
    newer = read_checkpoint(replicas / "hf_mmengine_0_10.pth")["message_hub"]["log_scalars"]["train/loss"]
    assert dict(newer.state["statistics_methods"]) == {m: m for m in ("min", "max", "current", "mean")}


# ----------------------------------------------------------------------------- poisoned files


@pytest.mark.parametrize("name", sorted(POISONED))
def test_poisoned_variant_is_refused_without_running(replicas, name, tmp_path, monkeypatch):
    marker = tmp_path / "payload-ran"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    with pytest.raises(WeightsError) as ei:
        Estimator(model="dwpose-t", weights=str(replicas / name), runtime="torch")
    msg = str(ei.value)
    assert POISONED[name] in msg and "refused on purpose" in msg and name in msg
    assert not marker.exists(), "the payload ran"


def test_payloads_run_under_a_plain_pickle_load(replicas, mmpose_python, tmp_path):
    """The poisoned files are live: mmengine's own unpickling (weights_only=False) runs each payload."""
    names = [n for n in sorted(POISONED) if n != "poison_getattr.pth"]  # that one runs no command
    code = ("import os, sys, torch\n"
            "for name in sys.argv[3:]:\n"
            f"    os.environ['{MARKER_ENV}'] = os.path.join(sys.argv[2], name + '.ran')\n"
            "    torch.load(os.path.join(sys.argv[1], name), weights_only=False)\n")
    proc = subprocess.run([mmpose_python, "-c", code, str(replicas), str(tmp_path), *names], env=child_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n + ".ran" for n in names)


# ----------------------------------------------------------------------------- the allow-list (no venv)


def test_allow_list_is_exactly_what_the_files_need():
    names = {name for _, name in allowed_globals()}
    dtype_classes = {n for n in names if n.startswith("numpy.dtypes.")}
    assert names - dtype_classes == {
        HISTORY_BUFFER, "builtins.getattr", "numpy.ndarray", "numpy.dtype",
        "numpy.core.multiarray._reconstruct", "numpy.core.multiarray.scalar",
        "numpy._core.multiarray._reconstruct", "numpy._core.multiarray.scalar"}
    assert "numpy.dtypes.ObjectDType" not in dtype_classes and "numpy.dtypes.Float32DType" in dtype_classes
    assert len(dtype_classes) <= 15


@pytest.fixture
def fake_mmengine(monkeypatch):
    """A stand-in `mmengine.logging.history_buffer` module so this env can pickle crafted HistoryBuffers."""
    mod = types.ModuleType("mmengine.logging.history_buffer")

    class HistoryBuffer:
        pass

    HistoryBuffer.__module__, HistoryBuffer.__qualname__ = mod.__name__, "HistoryBuffer"
    mod.HistoryBuffer = HistoryBuffer
    for name in ("mmengine", "mmengine.logging"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    return HistoryBuffer


class _Reduce:
    def __init__(self, func, args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def test_crafted_uses_of_allowed_names_are_refused(tmp_path, fake_mmengine):
    state = build_model("dwpose-t").state_dict()
    cases = {
        # the class called with arguments (REDUCE), not rebuilt from its state
        "call": _Reduce(fake_mmengine, ([1.0], [1])),
        # getattr reaching anything but HistoryBuffer's four statistics methods
        "getattr_other": _Reduce(getattr, (np.ndarray, "tofile")),
        "getattr_dunder": _Reduce(getattr, (fake_mmengine, "__class__")),
        # object arrays would unpickle arbitrary members through numpy
        "object_array": np.array([1, "x"], dtype=object),
    }
    for tag, obj in cases.items():
        path = tmp_path / f"{tag}.pth"
        torch.save({"meta": {"x": obj}, "state_dict": state}, path)
        with pytest.raises(WeightsError, match="cannot read checkpoint"):
            read_checkpoint(path)
    # a HistoryBuffer built from its state is fine, and numpy 2 pickles (numpy._core) load too
    buf = fake_mmengine()
    buf.max_length, buf._log_history = 10, np.arange(3.0)
    path = tmp_path / "ok.pth"
    torch.save({"meta": {"sigmas": np.ones(133, np.float32), "best": np.float64(0.5)}, "hub": [buf],
                "state_dict": state}, path)
    ckpt = read_checkpoint(path)
    assert ckpt["hub"][0].state["_log_history"].tolist() == [0.0, 1.0, 2.0]
    assert ckpt["meta"]["best"] == 0.5 and "numpy._core.multiarray.scalar" in pickle_globals(path)
