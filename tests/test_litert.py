"""LiteRT (TensorFlow Lite): litert-torch exports of the embedded default and of a random-weights dwpose-t, the
runtime's errors, and the Estimator on it. INT8 through the held-out gate is slow (sensitivity + search)."""
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

pytest.importorskip("ai_edge_litert")
pytest.importorskip("litert_torch")

from dwpose_edge import Estimator  # noqa: E402
from dwpose_edge.errors import ModelFileError  # noqa: E402
from dwpose_edge.export.cache import cached_export  # noqa: E402
from dwpose_edge.export.pipeline import export_model  # noqa: E402
from dwpose_edge.export.to_litert import export_litert_fp32  # noqa: E402
from dwpose_edge.export.validate import THRESHOLDS, agreement, run_batched, validation_crops  # noqa: E402
from dwpose_edge.manifest import read_manifest, verified_paths  # noqa: E402
from dwpose_edge.models import load_model  # noqa: E402
from dwpose_edge.runtimes.litert_runtime import LiteRtRuntime  # noqa: E402
from side_venv import child_env  # noqa: E402

SIZE = (192, 256)
BOXES = np.array([[150, 40, 420, 600], [60, 100, 300, 500]], np.float32)


def torch_logits(model, crops):
    with torch.inference_mode():
        return tuple(t.numpy() for t in model.float().eval()(torch.from_numpy(crops)))


def tflite_of(folder, precision):
    art = read_manifest(folder).find("litert", precision)
    return verified_paths(folder, art)["tflite"], art


@pytest.fixture(scope="module")
def embedded():
    """The embedded default (weights=None) exported for LiteRT fp32 and fp16 through the export cache."""
    return {p: cached_export("dwpose-t", None, "litert", p, threads=2) for p in ("fp32", "fp16")}


@pytest.fixture(scope="module")
def random_export(tiny_checkpoint, tmp_path_factory):
    """A seeded random-weights dwpose-t (perturbed BatchNorm statistics) exported to fp32 and fp16."""
    out = tmp_path_factory.mktemp("litert-random")
    export_model("dwpose-t", str(tiny_checkpoint), out, targets=["litert"], precisions=["fp32", "fp16"], threads=2,
                 log=lambda m: None)
    return out


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_embedded_export_agrees_with_torch(embedded, precision):
    path, art = tflite_of(embedded[precision], precision)
    assert art.validation["within_1px"] >= THRESHOLDS[precision][1]
    crops = validation_crops(SIZE)
    rt = LiteRtRuntime(path, threads=2, precision=precision)
    assert rt.input_size == SIZE
    a = agreement(torch_logits(load_model("dwpose-t", None), crops), run_batched(rt.infer, crops))
    assert a.within_1px >= THRESHOLDS[precision][1], a
    if precision == "fp32":
        assert a.within_1px == 1.0 and a.max_logit_diff < 1e-4, a
    else:  # fp16 weights: half the file, a real rounding
        assert 1e-6 < a.max_logit_diff < 0.05, a
        fp32_path, _ = tflite_of(embedded["fp32"], "fp32")
        assert path.stat().st_size < 0.6 * fp32_path.stat().st_size


def test_random_weights_export(random_export, tiny_checkpoint):
    doc = json.loads((random_export / "manifest.json").read_text())
    assert {(a["runtime"], a["precision"]) for a in doc["artifacts"]} == {("litert", "fp32"), ("litert", "fp16")}
    model = load_model("dwpose-t", str(tiny_checkpoint))
    crops = validation_crops(SIZE)
    ref = torch_logits(model, crops)
    for precision in ("fp32", "fp16"):
        path, art = tflite_of(random_export, precision)
        assert art.validation["within_1px"] >= THRESHOLDS[precision][1]
        a = agreement(ref, run_batched(LiteRtRuntime(path, threads=2, precision=precision).infer, crops))
        assert a.within_1px >= THRESHOLDS[precision][1], (precision, a)
        if precision == "fp32":  # logits span ~120 here; torch fp32 itself is 4e-4 from float64 on them
            span = float(ref[0].max() - ref[0].min())
            assert a.within_1px == 1.0 and a.max_logit_diff < 1e-4 * span, (a, span)


def test_batches_threads_and_owned_outputs(embedded):
    path, _ = tflite_of(embedded["fp32"], "fp32")
    rt = LiteRtRuntime(path, threads=1)
    crops = validation_crops(SIZE)[:5]
    whole = rt.infer(crops)
    single = [rt.infer(crops[i:i + 1]) for i in range(5)]
    np.testing.assert_array_equal(whole[0], np.concatenate([s[0] for s in single]))
    np.testing.assert_array_equal(whole[1], np.concatenate([s[1] for s in single]))
    assert whole[0].shape == (5, 133, 384) and whole[1].shape == (5, 133, 512)
    kept = whole[0].copy()
    rt.infer(crops[::-1])
    np.testing.assert_array_equal(whole[0], kept)  # a later call does not write into returned arrays
    results = {}

    def worker(i):
        results[i] = rt.infer(crops[i % 5:i % 5 + 1])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (x, y) in results.items():
        np.testing.assert_array_equal(x, single[i % 5][0])
        np.testing.assert_array_equal(y, single[i % 5][1])
    assert 1 <= len(rt._idle) <= 8  # one interpreter per concurrent caller, kept for reuse


class _Swapped(torch.nn.Module):
    """A tiny SimCC-shaped model: (1,3,8,6) in, returns (simcc_y (1,4,16), simcc_x (1,4,12)) in that order."""

    def __init__(self, n_out: int = 2) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.n_out = n_out

    def forward(self, x):
        f = self.conv(x).flatten(2)  # (1, 4, 48)
        y, x_ = f[..., :16], f[..., 16:28]
        return (y, x_) if self.n_out == 2 else (y, x_, f)


class _Spec:
    input_size = (6, 8)


def _tiny_tflite(path, n_out):
    module = _Swapped(n_out).eval()
    module.spec = _Spec()
    return module, export_litert_fp32(module, path)


def test_outputs_told_apart_by_shape_and_bad_files(tmp_path, embedded):
    module, path = _tiny_tflite(tmp_path / "swapped.tflite", 2)
    rt = LiteRtRuntime(path, threads=1)
    assert rt.input_size == (6, 8)
    crop = np.random.default_rng(0).standard_normal((2, 3, 8, 6)).astype(np.float32)
    sx, sy = rt.infer(crop)
    ref_y, ref_x = torch_logits(module, crop)
    assert sx.shape == (2, 4, 12) and sy.shape == (2, 4, 16)
    np.testing.assert_allclose(sx, ref_x, atol=1e-5)
    np.testing.assert_allclose(sy, ref_y, atol=1e-5)
    _, three = _tiny_tflite(tmp_path / "three.tflite", 3)
    with pytest.raises(ModelFileError, match="3 outputs"):
        LiteRtRuntime(three)

    good, _ = tflite_of(embedded["fp32"], "fp32")
    data = good.read_bytes()
    for name, blob, match in [("empty", b"", "empty or truncated"),
                              ("truncated", data[:len(data) // 2], "cannot load"),
                              ("text", b"not a model at all, just text", "not a .tflite"),
                              ("garbled", data[:8] + bytes(4000) + data[4008:], "cannot load")]:
        bad = tmp_path / f"{name}.tflite"
        bad.write_bytes(blob)
        with pytest.raises(ModelFileError, match=match):
            LiteRtRuntime(bad)
    with pytest.raises(ModelFileError, match="not found"):
        LiteRtRuntime(tmp_path / "missing.tflite")
    with pytest.raises(ModelFileError, match=r"takes 192x256 \(WxH\) crops but input_size=\(288, 384\)"):
        LiteRtRuntime(good, input_size=(288, 384))
    with pytest.raises(ModelFileError, match="a float LiteRT model but precision='int8'"):
        LiteRtRuntime(good, precision="int8")
    folder = tmp_path / "damaged"
    folder.mkdir()
    for f in embedded["fp32"].iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / good.name).write_bytes(data[:-100])
    with pytest.raises(ModelFileError, match="sha256"):
        Estimator("dwpose-t", runtime="litert", model_dir=folder)


def test_estimator_end_to_end(embedded, grace_hopper):
    est = Estimator("dwpose-t", runtime="litert", threads=2)  # the embedded default, from the export cache
    ref = Estimator("dwpose-t", runtime="onnxruntime", threads=2)
    assert est.runtime.name == "litert"
    a, b = ref(grace_hopper, BOXES), est(grace_hopper, BOXES)
    px = np.linalg.norm(a.keypoints - b.keypoints, axis=-1)
    assert (px <= 3.0).mean() >= 0.995
    np.testing.assert_allclose(a.scores, b.scores, atol=2e-3)
    fp16 = Estimator("dwpose-t", runtime="litert", precision="fp16", model_dir=embedded["fp16"], threads=2)
    c = fp16(grace_hopper, BOXES)
    assert (np.linalg.norm(a.keypoints - c.keypoints, axis=-1) <= 3.0).mean() >= THRESHOLDS["fp16"][1]


def test_missing_packages_name_the_extras(embedded):
    code = f"""
import sys
sys.modules["ai_edge_litert"] = None
sys.modules["litert_torch"] = None
from dwpose_edge import Estimator
from dwpose_edge.embedded import default_onnx
from dwpose_edge.errors import RuntimeUnavailableError
from dwpose_edge.export.pipeline import export_model
try:
    Estimator("dwpose-t", runtime="litert", model_dir={str(embedded["fp32"])!r})
except RuntimeUnavailableError as exc:
    print("RUN:", exc)
try:
    export_model("dwpose-t", str(default_onnx("dwpose-t")), {str(embedded["fp32"].parent / ".litert-missing")!r},
                 targets=["litert"], precisions=["fp32"], log=lambda m: None)
except RuntimeUnavailableError as exc:
    print("EXPORT:", exc)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if line[:4] in ("RUN:", "EXPO"))
    assert "pip install 'dwpose-edge[litert]'" in lines["RUN"], proc.stdout
    assert "pip install 'dwpose-edge[litert-export]'" in lines["EXPORT"], proc.stdout


@pytest.mark.slow  # calibration, per-layer sensitivity and the fp32-layer search: ~2 min on 2 cores
def test_int8_export_passes_the_gate(tmp_path):
    """The embedded default to LiteRT INT8 with the project's INT8 path: embedded calibration data, held-out gate."""
    from dwpose_edge.embedded import default_onnx

    export_model("dwpose-t", str(default_onnx("dwpose-t")), tmp_path, targets=["litert"], precisions=["int8"],
                 threads=2, log=lambda m: None)
    art = read_manifest(tmp_path).find("litert", "int8")
    gate = art.extra["gate"]
    assert gate["passed"] and not gate["failures"], gate
    assert gate["heldout"]["within_2px"] >= THRESHOLDS["int8"][1]
    assert gate["ap"]["drop"] is None or gate["ap"]["drop"] <= 1.0
    assert art.extra["quantization"]["int8_ops"] > 0
    assert sorted(art.extra["quantization"]["output_ops_fp32"]) == ["/head/cls_x/MatMul", "/head/cls_y/MatMul"]
    assert not (tmp_path / ".int8-litert-fp32").exists()
    est = Estimator("dwpose-t", runtime="litert", precision="int8", model_dir=tmp_path, threads=2)
    ref = Estimator("dwpose-t", runtime="onnxruntime", threads=2)
    crops = validation_crops(SIZE)
    a = agreement(ref.infer_crops(crops), est.infer_crops(crops))
    assert 0.8 < a.within_2px and a.max_logit_diff > 1e-3, a  # a real quantisation, close to fp32
