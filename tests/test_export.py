"""ONNX / OpenVINO exports and runtimes against the torch reference (ncnn: tests/test_ncnn.py)."""
import json
import shutil
import sys
import warnings

import numpy as np
import pytest
import torch

from dwpose_edge import Estimator
from dwpose_edge.errors import ModelFileError, ParityError, RuntimeUnavailableError
from dwpose_edge.manifest import read_manifest
from dwpose_edge.export.pipeline import export_model
from dwpose_edge.export.validate import THRESHOLDS, agreement, validate, validation_crops
from dwpose_edge.models import build_model, load_checkpoint
from dwpose_edge.runtimes.onnxruntime_runtime import OnnxRuntime
from dwpose_edge.runtimes.openvino_runtime import OpenVinoRuntime

BOXES = np.array([[150, 40, 420, 600], [60, 100, 300, 500]], np.float32)


def perturbed_checkpoint(path, name, seed):
    torch.manual_seed(seed)
    model = build_model(name)
    g = torch.Generator().manual_seed(seed + 1)
    for k, v in model.state_dict().items():
        if k.endswith("running_var"):
            v.copy_(torch.rand(v.shape, generator=g) * 0.5 + 0.75)
        elif k.endswith("running_mean"):
            v.copy_(torch.randn(v.shape, generator=g) * 0.1)
    torch.save({"meta": {}, "state_dict": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module", params=["dwpose-t", "dwpose-s", pytest.param("dwpose-m", marks=pytest.mark.slow),
                                        pytest.param("dwpose-l", marks=pytest.mark.slow)])
def exported(request, tmp_path_factory):
    name = request.param
    tmp = tmp_path_factory.mktemp(name)
    ckpt = perturbed_checkpoint(tmp / f"{name}.pth", name, seed=3)
    out = tmp / "export"
    export_model(name, str(ckpt), out, targets=["onnx", "openvino"], precisions=["fp32", "fp16"], log=lambda m: None)
    return name, ckpt, out


def test_manifest_records_passing_validation(exported):
    name, ckpt, out = exported
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["model"] == name and doc["opset"] == 17 and doc["color"] == "RGB"
    assert {(a["runtime"], a["precision"]) for a in doc["artifacts"]} == {
        ("onnxruntime", "fp32"), ("onnxruntime", "fp16"), ("openvino", "fp32"), ("openvino", "fp16")}
    for a in doc["artifacts"]:
        radius, fraction = THRESHOLDS[a["precision"]]
        assert a["validation"]["within_1px"] >= fraction, a
        assert all(len(h) == 64 for h in a["sha256"].values())
        assert a["validation"]["n_crops"] == doc["validation_crops"]["n"] >= 10
    assert doc["source"]["sha256"] and doc["versions"]["onnxruntime"]
    ov = [a for a in doc["artifacts"] if a["runtime"] == "openvino"]
    assert all(a["extra"]["inference_precision"] in ("f32", "f16", "<Type: 'float32'>", "<Type: 'float16'>")
               for a in ov)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_estimator_matches_torch_on_real_photo(exported, grace_hopper, runtime, precision):
    name, ckpt, out = exported
    ref = Estimator(name, weights=str(ckpt))
    est = Estimator(name, runtime=runtime, precision=precision, model_dir=out)
    crops = validation_crops(ref.input_size)
    result = agreement(ref.infer_crops(crops), est.infer_crops(crops))
    assert result.within_1px >= THRESHOLDS[precision][1]
    a, b = ref(grace_hopper, BOXES), est(grace_hopper, BOXES)
    px = np.linalg.norm(a.keypoints - b.keypoints, axis=-1)
    # one input pixel is about 2.9 image pixels for these boxes (scale / input size)
    assert (px <= 3.0).mean() >= THRESHOLDS[precision][1]
    if precision == "fp32":
        np.testing.assert_allclose(a.scores, b.scores, atol=2e-3)


def test_batches_and_threads(exported):
    name, _, out = exported
    crops = validation_crops((192, 256))[:5]
    for rt in (OnnxRuntime(out / f"{name}_256x192_fp32.onnx", threads=1),
               OpenVinoRuntime(out / f"{name}_256x192_fp32.xml", threads=1)):
        whole = rt.infer(crops)
        single = [rt.infer(crops[i:i + 1]) for i in range(5)]
        np.testing.assert_allclose(whole[0], np.concatenate([s[0] for s in single]), atol=1e-4)


def test_openvino_streams_split_even_batches_only(exported):
    """With 2 threads OpenVINO runs even batches as one chunk per stream: same logits, in input order."""
    name, _, out = exported
    crops = validation_crops((192, 256))[:8]
    xml = out / f"{name}_256x192_fp32.xml"
    one, two = OpenVinoRuntime(xml, threads=2, streams=1), OpenVinoRuntime(xml, threads=2, streams=2)
    assert (one.streams, two.streams) == (1, 2) and OpenVinoRuntime(xml, threads=1).streams == 1
    for n in (1, 2, 3, 8):
        for a, b in zip(one.infer(crops[:n]), two.infer(crops[:n])):
            assert a.shape == b.shape and a.shape[0] == n
            np.testing.assert_allclose(a, b, atol=1e-5)
    started = []
    for request in two._requests()[1:]:  # the stream requests: what an even batch goes through
        request.set_callback(lambda _, i=len(started): started.append(i), None)
    two.infer(crops[:4])
    assert len(started) == 2


def official_layout_onnx(path, name="dwpose-t", seed=5):
    """An ONNX file written as mmdeploy / DWPose's release do, without our exporter."""
    torch.manual_seed(seed)
    model = build_model(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 256, 192),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["simcc_x", "simcc_y"],
                          dynamic_axes={"input": {0: "batch"}, "simcc_x": {0: "batch"}, "simcc_y": {0: "batch"}})
    return model


def test_official_layout_onnx_loads_and_converts(tmp_path, grace_hopper):
    onnx_path = tmp_path / "dw-tt_ucoco.onnx"
    model = official_layout_onnx(onnx_path)
    crops = validation_crops((192, 256))
    with torch.inference_mode():
        ref = tuple(t.numpy() for t in model(torch.from_numpy(crops)))
    direct = Estimator("dwpose-t", weights=str(onnx_path), runtime="onnxruntime")
    assert agreement(ref, direct.infer_crops(crops)).within_1px >= 0.995
    ov_direct = Estimator("dwpose-t", weights=str(onnx_path), runtime="openvino")
    assert agreement(ref, ov_direct.infer_crops(crops)).within_1px >= 0.995
    out = tmp_path / "export"
    export_model("dwpose-t", str(onnx_path), out, targets=["openvino"], precisions=["fp32", "fp16"],
                 log=lambda m: None)
    man = read_manifest(out)
    assert "onnxruntime" in man.info["reference"]
    est = Estimator("dwpose-t", runtime="openvino", precision="fp16", model_dir=out)
    assert agreement(ref, est.infer_crops(crops)).within_1px >= 0.98


def test_export_on_first_use_is_cached(tmp_path, monkeypatch, tiny_checkpoint):
    monkeypatch.setenv("DWPOSE_EDGE_CACHE", str(tmp_path / "cache"))
    est = Estimator("dwpose-t", weights=str(tiny_checkpoint), runtime="onnxruntime")
    folders = list((tmp_path / "cache" / "exports").iterdir())
    assert len(folders) == 1
    manifest = folders[0] / "manifest.json"
    mtime = manifest.stat().st_mtime_ns
    again = Estimator("dwpose-t", weights=str(tiny_checkpoint), runtime="onnxruntime")
    assert manifest.stat().st_mtime_ns == mtime
    crops = validation_crops((192, 256))[:4]
    np.testing.assert_array_equal(est.infer_crops(crops)[0], again.infer_crops(crops)[0])


def test_disagreeing_runtime_is_an_error(exported, tmp_path):
    name, ckpt, out = exported
    other = load_checkpoint(build_model(name), perturbed_checkpoint(tmp_path / "other.pth", name, seed=11))
    ort = OnnxRuntime(out / f"{name}_256x192_fp32.onnx")
    crops = validation_crops((192, 256))

    def reference(batch):
        with torch.inference_mode():
            return tuple(t.numpy() for t in other(torch.from_numpy(batch)))

    with pytest.raises(ParityError, match=r"within 1 px"):
        validate(reference, ort.infer, crops, "fp32", "onnxruntime/fp32 export")


def test_corrupt_and_mismatched_files(exported, tmp_path):
    name, _, out = exported
    onnx_file = out / f"{name}_256x192_fp32.onnx"
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(onnx_file.read_bytes()[: onnx_file.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="not a valid ONNX"):
        OnnxRuntime(truncated)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        OpenVinoRuntime(empty)
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    xml = bad / f"{name}_256x192_fp32.xml"
    xml.with_suffix(".bin").write_bytes(xml.with_suffix(".bin").read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="sha256"):
        Estimator(name, runtime="openvino", model_dir=bad)
    with pytest.raises(ModelFileError, match="truncated|cannot read|size"):
        OpenVinoRuntime(xml)
    wrong = "dwpose-s" if name == "dwpose-t" else "dwpose-t"
    with pytest.raises(ModelFileError, match=f"holds an export of {name}, not {wrong}"):
        Estimator(wrong, runtime="onnxruntime", model_dir=out)
    with pytest.raises(ModelFileError, match="no ncnn/fp32 export"):
        Estimator(name, runtime="ncnn", model_dir=out)


def test_missing_runtime_package_names_the_extra(exported, monkeypatch):
    name, _, out = exported
    monkeypatch.setitem(sys.modules, "openvino", None)  # hides the package, as if not installed
    with pytest.raises(RuntimeUnavailableError, match=r"pip install 'dwpose-edge\[openvino\]'"):
        Estimator(name, runtime="openvino", model_dir=out)


@pytest.mark.skipif("CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
                    reason="checks the error raised where onnxruntime has no CUDA EP")
def test_onnxruntime_cuda_request_without_cuda_is_an_error(exported):
    name, _, out = exported
    with pytest.raises(RuntimeUnavailableError, match="CUDAExecutionProvider"):
        OnnxRuntime(out / f"{name}_256x192_fp32.onnx", device="cuda")
