"""Untrusted files: checkpoints are only ever loaded with `torch.load(weights_only=True)` (checked in the source
and by loading pickles that would run a command), and every ONNX file passes `check_onnx_file` before a runtime
sees it, whichever entry point it comes through. Download verification: tests/test_weights.py."""
from __future__ import annotations

import ast
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dwpose_edge import Estimator
from dwpose_edge.errors import ModelFileError, WeightsError
from dwpose_edge.hashing import sha256_file
from dwpose_edge.models import build_model, load_checkpoint
from shared_models import installed, model_dir

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("dwpose_edge", "runtimes", "export", "train", "bench")
ONNX_NAME = "dwpose-t_256x192_fp32.onnx"


def package_calls():
    """(file, line, dotted callee, call node) of every call in the installed package's sources."""
    for folder in PACKAGE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    yield path.relative_to(ROOT), node.lineno, ast.unparse(node.func), node


def keyword(node: ast.Call, name: str):
    kw = next((k for k in node.keywords if k.arg == name), None)
    return None if kw is None else (kw.value.value if isinstance(kw.value, ast.Constant) else "<expr>")


def test_every_torch_load_is_weights_only():
    loads = [(f, ln, node) for f, ln, callee, node in package_calls() if callee == "torch.load"]
    assert len(loads) >= 2  # pose_model.load_checkpoint and the trainer's --resume
    bad = [f"{f}:{ln}" for f, ln, node in loads if keyword(node, "weights_only") is not True]
    assert not bad, f"torch.load without weights_only=True at {bad}"


def test_no_other_deserializer_of_untrusted_data():
    """No pickle/marshal/jit loading, no eval/exec, yaml only through safe_load, np.load never with pickles."""
    forbidden = {"pickle.load", "pickle.loads", "marshal.load", "marshal.loads", "torch.jit.load", "eval", "exec",
                 "yaml.load", "yaml.unsafe_load", "dill.load", "joblib.load"}
    found = [f"{f}:{ln} {callee}" for f, ln, callee, _ in package_calls() if callee in forbidden]
    found += [f"{f}:{ln} np.load(allow_pickle=...)" for f, ln, callee, node in package_calls()
              if callee in ("np.load", "numpy.load") and keyword(node, "allow_pickle") not in (None, False)]
    assert not found, found


class Payload:
    """Unpickling this runs `touch <marker>`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_files(tmp_path: Path) -> dict[str, Path]:
    marker = tmp_path / "pwned"
    state = build_model("dwpose-t").state_dict()
    files = {"zip": tmp_path / "zip.pth", "legacy": tmp_path / "legacy.pth", "plain-pickle": tmp_path / "plain.pth",
             "in-state-dict": tmp_path / "in_sd.pth"}
    torch.save({"meta": {"hook": Payload(marker)}, "state_dict": state}, files["zip"])
    torch.save({"meta": {}, "state_dict": state, "x": Payload(marker)}, files["legacy"],
               _use_new_zipfile_serialization=False)
    with open(files["plain-pickle"], "wb") as f:
        pickle.dump({"state_dict": Payload(marker)}, f)
    torch.save({"state_dict": {**state, "backbone.evil": Payload(marker)}}, files["in-state-dict"])
    return files


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("kind", ["zip", "legacy", "plain-pickle", "in-state-dict"])
@pytest.mark.parametrize("entry", ["Estimator", "load_checkpoint", "export_model"])
def test_malicious_pickles_are_refused_and_never_run(tmp_path, kind, entry):
    path = _evil_files(tmp_path)[kind]
    calls = {
        "Estimator": lambda: Estimator("dwpose-t", weights=str(path)),
        "load_checkpoint": lambda: load_checkpoint(build_model("dwpose-t"), path),
        "export_model": lambda: __import__("dwpose_edge.export.pipeline", fromlist=["x"]).export_model(
            "dwpose-t", str(path), tmp_path / "out", targets=["onnx"], precisions=["fp32"], log=lambda m: None),
    }
    with pytest.raises(WeightsError, match=r"refused on purpose"):
        calls[entry]()
    assert not (tmp_path / "pwned").exists(), "the pickle's payload ran"
    assert os.system(f"touch {tmp_path / 'pwned'}") == 0 and (tmp_path / "pwned").exists()  # the payload works


# ------------------------------------------------------------------------------------------- ONNX checks


@pytest.fixture(scope="module")
def poisoned_onnx(tmp_path_factory) -> Path:
    """The test model's ONNX with one NaN weight: onnxruntime, OpenVINO and pnnx load it without complaint,
    only `check_onnx_file` refuses it, so its message proves the check ran first."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(model_dir("onnxruntime") / ONNX_NAME))
    init = next(i for i in proto.graph.initializer if i.name == "head.final_layer.weight")
    arr = numpy_helper.to_array(init).copy()
    arr.flat[0] = np.nan
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    path = tmp_path_factory.mktemp("poisoned") / "poisoned.onnx"
    onnx.save(proto, str(path))
    return path


def test_runtimes_would_load_the_poisoned_file(poisoned_onnx):
    import onnxruntime as ort

    session = ort.InferenceSession(str(poisoned_onnx), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 256, 192), np.float32)})
    assert np.isnan(out[0]).any()  # loads and silently computes NaN


def _rehashed_folder(tmp_path: Path, runtime: str, onnx_file: Path) -> Path:
    """An onnxruntime export folder whose model file is `onnx_file`, with a manifest hash that matches it."""
    import json

    src = model_dir(runtime)
    dst = tmp_path / "folder"
    shutil.copytree(src, dst)
    doc = json.loads((dst / "manifest.json").read_text())
    art = next(a for a in doc["artifacts"] if a["runtime"] == runtime)
    shutil.copyfile(onnx_file, dst / art["files"]["model"])
    art["sha256"]["model"] = sha256_file(dst / art["files"]["model"])
    (dst / "manifest.json").write_text(json.dumps(doc))
    return dst


ENTRIES = {
    "estimator-onnxruntime": lambda p, t: Estimator("dwpose-t", weights=str(p), runtime="onnxruntime"),
    "estimator-openvino": lambda p, t: Estimator("dwpose-t", weights=str(p), runtime="openvino"),
    "estimator-ncnn": lambda p, t: Estimator("dwpose-t", weights=str(p), runtime="ncnn"),
    "model-dir-onnxruntime": lambda p, t: Estimator("dwpose-t", runtime="onnxruntime",
                                                    model_dir=_rehashed_folder(t, "onnxruntime", p)),
    "export-model": lambda p, t: __import__("dwpose_edge.export.pipeline", fromlist=["x"]).export_model(
        "dwpose-t", str(p), t / "out", targets=["onnx"], precisions=["fp32"], log=lambda m: None),
    "export-openvino": lambda p, t: __import__("dwpose_edge.export.to_openvino", fromlist=["x"]).export_openvino(
        p, t / "m.xml"),
    "onnx-to-ncnn": lambda p, t: __import__("dwpose_edge.export.to_ncnn", fromlist=["x"]).onnx_to_ncnn(p, t),
}
NEEDS = {"estimator-openvino": "openvino", "export-openvino": "openvino", "estimator-ncnn": "ncnn",
         "onnx-to-ncnn": "ncnn"}


@pytest.mark.parametrize("entry", [
    pytest.param(e, marks=pytest.mark.skipif(e in NEEDS and not installed(NEEDS[e]), reason="runtime not installed"))
    for e in ENTRIES])
def test_onnx_is_checked_before_any_runtime(entry, poisoned_onnx, tmp_path):
    with pytest.raises(ModelFileError, match=r"NaN/inf weights in \['head.final_layer.weight'\]"):
        ENTRIES[entry](poisoned_onnx, tmp_path)


def test_detector_onnx_is_checked(tmp_path):
    pose = model_dir("onnxruntime") / ONNX_NAME  # a valid ONNX, but not a 1-output detector
    with pytest.raises(ModelFileError, match=r"1 inputs and 2 outputs"):
        Estimator("dwpose-t", weights="random", detector=str(pose))


def test_onnx_external_data_outside_its_folder_is_refused(tmp_path):
    """An ONNX tensor stored 'externally' at ../../etc/...: never read, the file is refused."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from dwpose_edge.onnx_file import check_onnx_file

    weight = numpy_helper.from_array(np.zeros((2, 2), np.float32), "W")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in {"location": "../../../../../etc/hostname", "offset": "0", "length": "16"}.items():
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"]), helper.make_node("Identity", ["y"], ["z"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 2]) for n in ("y", "z")], [weight])
    path = tmp_path / "sub" / "ext.onnx"
    path.parent.mkdir()
    path.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(ModelFileError, match=r"points outside the directory"):
        check_onnx_file(path)
    assert onnx.__version__  # the protection is onnx's own (>= 1.16), relied upon here
