"""INT8 for onnxruntime, OpenVINO and ncnn: calibration data, ncnn int8 format, the accuracy gate.

The end-to-end tests use a briefly trained dwpose-t and its INT8 exports, built once and cached
(tests/int8_assets.py; the first run trains for several minutes, later runs reuse the cache).
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from dwpose_edge.errors import CalibrationError, ParityError
from dwpose_edge.export import int8 as int8_mod
from dwpose_edge.export.calibration import from_coco, from_image_folder, load_calibration
from dwpose_edge.export.validate import agreement, run_batched

INPUT = (192, 256)


@pytest.fixture(scope="session")
def trained():
    from int8_assets import trained_model

    return trained_model()


@pytest.fixture(scope="session")
def exported():
    from int8_assets import int8_export

    return int8_export()


# ----------------------------------------------------------------------------------------- calibration data


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_wholebody import make_tiny_wholebody

    root = tmp_path_factory.mktemp("calib")
    ann = make_tiny_wholebody(root, n_images=12, seed=3, people=(2, 3))
    return ann, root / "images"


def test_calibration_split_is_disjoint_by_image_and_deterministic(tiny):
    ann, images = tiny
    a = from_coco(ann, images, INPUT, n_calib=12, n_holdout=6, seed=0)
    b = from_coco(ann, images, INPUT, n_calib=12, n_holdout=6, seed=0)
    c = from_coco(ann, images, INPUT, n_calib=12, n_holdout=6, seed=1)
    assert len(a.calib) == 12 and len(a.holdout) >= 6
    assert not set(a.calib.image_ids.tolist()) & set(a.holdout.image_ids.tolist())
    assert a.calib.sha256 == b.calib.sha256 and a.holdout.sha256 == b.holdout.sha256
    assert a.calib.sha256 != c.calib.sha256
    # the held-out images keep every person, so AP on them is a proper AP
    per_image = {}
    for i in json.loads(ann.read_text())["annotations"]:
        per_image[i["image_id"]] = per_image.get(i["image_id"], 0) + 1
    assert all((a.holdout.image_ids == i).sum() == per_image[i] for i in a.holdout_image_ids)
    assert a.calib.crops.shape == (12, 3, INPUT[1], INPUT[0]) and a.calib.crops.dtype == np.float32
    assert a.info()["n_calib"] == 12 and a.info()["ground_truth"]


def test_calibration_crops_are_the_inference_crops(tiny):
    from dwpose_edge.preprocess import crop_boxes
    from dwpose_edge.evaluation.annotations import load_wholebody_instances

    ann, images = tiny
    data = from_coco(ann, images, INPUT, n_calib=4, n_holdout=4)
    inst = {i["ann_id"]: i for i in load_wholebody_instances(ann, images)}
    k = 0
    one = inst[int(data.calib.ann_ids[k])]
    crop, _, _ = crop_boxes(cv2.imread(one["image_path"]), one["bbox_xyxy"][None], INPUT)
    np.testing.assert_array_equal(crop[0], data.calib.crops[k])


def test_too_few_calibration_crops_raise(tiny, tmp_path):
    ann, images = tiny
    with pytest.raises(CalibrationError, match="needs 256 calibration"):
        from_coco(ann, images, INPUT)  # 12 images x 2-3 people << 256 + 64
    with pytest.raises(CalibrationError, match="calibration data"):
        load_calibration(None, None, INPUT)
    (tmp_path / "few").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "few" / f"{i}.jpg"), np.full((64, 48, 3), 100, np.uint8))
    with pytest.raises(CalibrationError, match="3 person crops"):
        from_image_folder(tmp_path / "few", INPUT, n_calib=8, n_holdout=2)


def test_image_folder_with_boxes_json(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (120, 90, 3), dtype=np.uint8))
    boxes = {"0.png": [[10, 10, 60, 100], [20, 5, 80, 110]], "1.png": [], "2.png": [[0, 0, 90, 120]]}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    # 2 + 0 + 1 boxes from the json, 3 unlisted images as whole-image boxes: 6 crops in 5 images
    data = load_calibration(tmp_path / "boxes.json", folder, INPUT, n_calib=3, n_holdout=1, seed=0)
    assert len(data.calib) == 3 and 1 <= len(data.holdout) <= 2 and data.ann_file is None
    assert not set(data.calib.files) & set(data.holdout.files) and "1.png" not in data.calib.files
    with pytest.raises(CalibrationError, match="6 person crops in 5 images"):
        load_calibration(tmp_path / "boxes.json", folder, INPUT, n_calib=6, n_holdout=1)
    whole = load_calibration(folder, None, INPUT, n_calib=4, n_holdout=2)
    assert whole.source["boxes"] == "whole image"
    with pytest.raises(CalibrationError, match="not in"):
        load_calibration(_write(tmp_path / "bad.json", {"x.png": [[0, 0, 5, 5]]}), folder, INPUT,
                         n_calib=1, n_holdout=1)


def _write(path, doc):
    path.write_text(json.dumps(doc))
    return path


# ----------------------------------------------------------------------------------------- ncnn int8 format


def test_kl_threshold_clips_outliers():
    from dwpose_edge.export.int8_ncnn import HIST_BINS, kl_threshold

    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal(200_000))
    x[:20] *= 40  # a few outliers stretch the range 40x
    amax = float(x.max())
    hist = np.bincount(np.minimum((x * HIST_BINS / amax).astype(int), HIST_BINS - 1), minlength=HIST_BINS)
    t = kl_threshold(hist, amax)
    assert 2.0 < t < 0.5 * amax  # keeps the bulk (|x| < ~4), drops the outliers' range


def test_ncnn_rewrite_roundtrip_and_int8_layout(tmp_path):
    """fp32 read -> write is byte-identical; the int8 rewrite has the size ncnn's loader expects and runs."""
    import torch

    pytest.importorskip("ncnn")
    from dwpose_edge.export.int8_ncnn import NcnnCalibrator, open_int8, read_model
    from dwpose_edge.export.to_ncnn import export_ncnn
    from dwpose_edge.models import build_model

    torch.manual_seed(0)
    files = export_ncnn(build_model("dwpose-t").eval(), tmp_path / "fp32")
    model = read_model(files.param, files.bin)
    model.write(tmp_path / "same.param", tmp_path / "same.bin")
    assert (tmp_path / "same.bin").read_bytes() == files.bin.read_bytes()

    from dwpose_edge.export.int8_sensitivity import weight_matrices
    from dwpose_edge.export.to_onnx import export_onnx

    import onnx

    torch.manual_seed(0)
    export_onnx(build_model("dwpose-t").eval(), tmp_path / "m.onnx")
    cal = NcnnCalibrator(files.param, files.bin, weight_matrices(onnx.load(str(tmp_path / "m.onnx"))), "in0", 2)
    assert len(cal.onnx_names) == len(cal.targets()) > 40  # every conv/linear found its ONNX node
    rng = np.random.default_rng(0)
    crops = rng.standard_normal((4, 3, INPUT[1], INPUT[0])).astype(np.float32)
    head = next(k for k, v in cal.onnx_names.items() if v == "/head/final_layer/Conv")
    plan = cal.plan(crops, ["/head/final_layer/Conv"], method="absmax")
    assert head in plan.kept_fp32 and head not in plan.int8
    cal.write(plan, tmp_path / "q.param", tmp_path / "q.bin")
    expected = 0
    for la in cal.model.layers:
        for kind, w in la.weights:
            expected += w.size * 4 + (4 if kind == "tagged" else 0)
        if la.name in plan.int8:
            w = la.weights[0][1]
            expected += -(w.size * 4) + ((w.size + 3) // 4) * 4  # int8 instead of fp32 weights
            groups = la.get(7, 1) if la.type == "ConvolutionDepthWise" else la.get(0)
            expected += 4 if la.type == "Gemm" else 4 * groups + 4  # scales
    assert (tmp_path / "q.bin").stat().st_size == expected
    text = (tmp_path / "q.param").read_text()
    assert " 8=2" in text and " 8=1" in text and " 18=2" in text
    runtime = open_int8(tmp_path / "q.param", tmp_path / "q.bin", threads=2)
    assert runtime.precision == "int8" and runtime.net.opt.use_int8_inference
    sx, sy = runtime.infer(crops[:1])
    assert sx.shape == (1, 133, 384) and np.isfinite(sx).all() and np.isfinite(sy).all()
    from dwpose_edge.errors import ModelFileError
    from dwpose_edge.runtimes.ncnn_runtime import NcnnRuntime

    with pytest.raises(ModelFileError, match="is an int8 ncnn model but precision='fp32'"):
        NcnnRuntime(tmp_path / "q.param", tmp_path / "q.bin")  # fp32 kernels on int8 weights: refused


# ----------------------------------------------------------------------------------------- trained model


@pytest.mark.slow  # trains a small checkpoint first: ~8 min cold on 2 cores, cached after (make test-all)
def test_trained_fixture_is_meaningful(trained):
    info = trained["info"]
    if "wholebody" in info["ap"]:  # absent only when xtcocotools is not importable
        assert info["ap"]["wholebody"] > 0, info
    assert info["peaks"]["frac_margin_gt_0.05"] > 0.5, info  # peaked logits, not argmax noise


@pytest.mark.slow  # trains a small checkpoint first: ~8 min cold on 2 cores, cached after (make test-all)
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "ncnn"])
def test_int8_passes_gate_on_trained_model(exported, runtime):
    m = exported["manifest"]
    art = next(a for a in m["artifacts"] if a["runtime"] == runtime and a["precision"] == "int8")
    gate = art["extra"]["gate"]
    assert gate["passed"] and not gate["failures"], gate
    assert gate["heldout"]["within_2px"] >= 0.95
    assert gate["ap"]["drop"] is None or gate["ap"]["drop"] <= 1.0
    assert isinstance(art["extra"]["fp_layers"], list)
    assert art["extra"]["accuracy_loss_allowed"] is False
    from int8_assets import CALIB

    cal = m["int8"]["calibration"]
    assert cal["n_calib"] == CALIB["n_calib"] and cal["n_holdout"] >= CALIB["n_holdout"] and cal["ground_truth"]
    assert m["int8"]["sensitivity"]["layers"]


@pytest.mark.slow  # trains a small checkpoint first: ~8 min cold on 2 cores, cached after (make test-all)
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "ncnn"])
def test_int8_artifact_reopens_and_agrees_on_heldout(exported, runtime):
    """Open the manifest's int8 artifact like users do and re-measure it on the held-out crops."""
    from dwpose_edge import Estimator
    from dwpose_edge.manifest import read_manifest, verified_paths
    from int8_assets import CALIB

    t = exported["trained"]
    data = from_coco(t["ann"], t["images"], INPUT, **CALIB)
    ref = Estimator("dwpose-t", weights=str(t["checkpoint"]))
    if runtime == "ncnn":
        from dwpose_edge.export.int8_ncnn import open_int8

        art = read_manifest(exported["dir"]).find("ncnn", "int8")
        paths = verified_paths(exported["dir"], art)
        q_infer = open_int8(paths["param"], paths["bin"], threads=2).infer
    else:
        q_infer = Estimator("dwpose-t", runtime=runtime, precision="int8", model_dir=exported["dir"],
                            threads=2).runtime.infer
    a = agreement(run_batched(ref.runtime.infer, data.holdout.crops), run_batched(q_infer, data.holdout.crops))
    assert a.within_2px >= 0.95, a


@pytest.mark.slow  # trains a small checkpoint first: ~8 min cold on 2 cores, cached after (make test-all)
def test_calibration_and_gate_crops_are_disjoint_in_the_export(exported):
    from int8_assets import CALIB

    t = exported["trained"]
    data = from_coco(t["ann"], t["images"], INPUT, **CALIB)
    cal = exported["manifest"]["int8"]["calibration"]
    assert cal["calib_sha256"] == data.calib.sha256 and cal["holdout_sha256"] == data.holdout.sha256
    assert not set(data.calib.image_ids.tolist()) & set(data.holdout.image_ids.tolist())
    calib_rows = {c.tobytes() for c in data.calib.crops}
    assert not any(c.tobytes() in calib_rows for c in data.holdout.crops)


@pytest.mark.slow  # trains a small checkpoint first: ~8 min cold on 2 cores, cached after (make test-all)
def test_gate_failure_raises_with_figures_and_allow_flag_writes_it(trained, tmp_path, monkeypatch):
    """A gate that cannot be met (monkeypatched to 100.1 %) must stop the export with the figures;
    --allow-accuracy-loss writes the folder with the failure flagged instead."""
    from dwpose_edge.manifest import read_manifest
    from dwpose_edge.export.pipeline import export_model
    from int8_assets import CALIB

    monkeypatch.setattr(int8_mod, "GATE_FRACTION", 1.001)
    opts = {**CALIB, "fixed_fp_layers": ()}  # no layer search: one quantisation, fast
    kw = dict(targets=["onnx"], precisions=["int8"], threads=2, log=lambda m: None, calib=trained["ann"],
              calib_images=trained["images"], int8_options=opts)
    with pytest.raises(ParityError) as err:
        export_model("dwpose-t", str(trained["checkpoint"]), tmp_path / "fail", **kw)
    msg = str(err.value)
    assert "of held-out keypoints within 2 px" in msg and "needs >= 100%" in msg and "allow_accuracy_loss" in msg
    assert not (tmp_path / "fail" / "manifest.json").exists()

    export_model("dwpose-t", str(trained["checkpoint"]), tmp_path / "allowed", allow_accuracy_loss=True, **kw)
    art = read_manifest(tmp_path / "allowed").find("onnxruntime", "int8")
    assert art.extra["gate"]["passed"] is False and art.extra["gate"]["failures"]
    assert art.extra["accuracy_loss_allowed"] is True and art.validation["gate_passed"] is False
    assert art.extra["gate"]["ap"]["fp32"] is None or art.extra["gate"]["ap"]["drop"] is not None


def test_embedded_validation_set_is_the_default_calibration(tmp_path):
    from dwpose_edge.embedded import embedded_val_set
    from dwpose_edge.export.cache import export_cache_folder

    ann, images = embedded_val_set()
    data = load_calibration(ann, images, INPUT)  # the defaults: 256 calibration + >= 64 held-out crops
    assert len(data.calib) == 256 and len(data.holdout) >= 64
    assert not set(data.calib.image_ids.tolist()) & set(data.holdout.image_ids.tolist())
    # the Estimator's int8 cache folder is keyed by the calibration data; None means the embedded set
    default = export_cache_folder("dwpose-t", "random", "onnxruntime", "int8")
    same = export_cache_folder("dwpose-t", "random", "onnxruntime", "int8", ann, images)
    other = export_cache_folder("dwpose-t", "random", "onnxruntime", "int8", _write(tmp_path / "c.json", {}),
                                   images)
    assert default == same != other and "_calib" in default.name
    assert "_calib" not in export_cache_folder("dwpose-t", "random", "onnxruntime", "fp32").name


def test_cli_export_passes_int8_arguments(monkeypatch, tmp_path):
    from dwpose_edge import cli

    seen = {}

    def fake_export(model, weights, out, **kw):
        seen.update(kw, model=model)
        return tmp_path / "manifest.json"

    monkeypatch.setattr("dwpose_edge.export.pipeline.export_model", fake_export)  # cli imports it per call
    rc = cli.main(["export", "--weights", "random", "--out", str(tmp_path), "--to", "onnx", "--precision", "int8",
                   "--calib", "ann.json", "--calib-images", "imgs", "--allow-accuracy-loss"])
    assert rc in (0, None)
    assert seen["precisions"] == ["int8"] and seen["calib"] == "ann.json" and seen["calib_images"] == "imgs"
    assert seen["allow_accuracy_loss"] is True


def test_intermediate_chunk_never_divides_the_batch_count():
    from dwpose_edge.export.int8_onnxruntime import intermediate_chunk

    for n in range(1, 3000):
        m = intermediate_chunk(n)
        assert 2 <= m <= max(32, n + 1) and (n % m or m > n), n


def test_onnxruntime_calibration_on_an_exact_multiple_of_the_chunk(tmp_path):
    """32 batches = one whole chunk of the default 32: onnxruntime 1.32 raised "No data is collected"."""
    pytest.importorskip("onnxruntime")
    from shared_models import model_dir

    from dwpose_edge.export.int8_onnxruntime import quantize_onnxruntime

    onnx = next(model_dir("onnxruntime").glob("*.onnx"))
    crops = np.random.default_rng(0).standard_normal((32, 3, 256, 192)).astype(np.float32)
    info = quantize_onnxruntime(onnx, tmp_path / "int8.onnx", crops, batch=1, preprocess=False)
    assert (tmp_path / "int8.onnx").stat().st_size < 0.5 * onnx.stat().st_size and info["n_calib"] == 32


def test_openvino_spatial_scope_quantizes_only_kxk_convolutions(tmp_path):
    """scope='spatial': int8 only where VNNI kernels beat bf16 here (docs/int8/PROFILE.md), i.e. dense
    convolutions with a kernel > 1x1; 1x1 and depthwise convolutions and the MatMuls stay floating point."""
    ov = pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from dwpose_edge.embedded import default_onnx
    from dwpose_edge.errors import ExportError
    from dwpose_edge.export.int8_openvino import outside_scope, quantize_openvino

    onnx = default_onnx("dwpose-t")
    model = ov.convert_model(str(onnx))

    def spatial(op):
        return op.get_type_name() == "Convolution" and op.input(1).get_partial_shape().to_shape()[2:] != [1, 1]

    arithmetic = [op for op in model.get_ordered_ops() if op.get_type_name() in ("Convolution", "GroupConvolution",
                                                                                  "MatMul")]
    left = set(outside_scope(model, "spatial"))
    assert left == {op.get_friendly_name() for op in arithmetic if not spatial(op)}
    assert {"GroupConvolution", "MatMul"} <= {op.get_type_name() for op in arithmetic if op.get_friendly_name() in left}
    assert outside_scope(model, "all") == []
    with pytest.raises(ExportError, match=r"unknown OpenVINO int8 scope 'fast'"):
        outside_scope(model, "fast")

    crops = np.random.default_rng(0).standard_normal((4, 3, 256, 192)).astype(np.float32)
    info = quantize_openvino(onnx, tmp_path / "int8.xml", crops, scope="spatial")
    q = ov.Core().read_model(str(tmp_path / "int8.xml"))
    quantized = set()
    for op in q.get_ordered_ops():
        if op.get_type_name() in ("Convolution", "GroupConvolution", "MatMul"):
            fq = [op.input_value(i).get_node() for i in range(2)]
            if any(n.get_type_name() == "FakeQuantize" for n in fq):
                quantized.add(op.get_friendly_name())
    assert quantized and quantized == {op.get_friendly_name() for op in arithmetic if spatial(op)}
    assert info["scope"] == "spatial" and info["ignored_scope"]["outside_scope"] == len(left)

    # its float layers run in bf16 where the CPU computes bf16 (faster, and what the export gate measures)
    from dwpose_edge.runtimes.cpu_features import has_bf16
    from dwpose_edge.runtimes.openvino_runtime import OpenVinoRuntime

    rt = OpenVinoRuntime(tmp_path / "int8.xml", threads=1, precision="int8")
    assert rt.compiled.get_property("INFERENCE_PRECISION_HINT") == (ov.Type.bf16 if has_bf16() else ov.Type.f32)
    assert OpenVinoRuntime(onnx, threads=1).compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_int8_export_end_to_end_on_the_embedded_model(tmp_path, runtime):
    """The whole INT8 path of `make test` (the trained-model tests are slow): calibration, per-layer
    sensitivity, the float-layer search and the held-out gate, on the embedded ONNX and the embedded val set."""
    from dwpose_edge.embedded import default_onnx, embedded_val_set
    from dwpose_edge.export.pipeline import export_model
    from dwpose_edge.manifest import read_manifest

    ann, images = embedded_val_set()
    options = {"n_calib": 48, "n_holdout": 24, "n_probe": 16, "max_fp_layers": 4}
    export_model("dwpose-t", str(default_onnx("dwpose-t")), tmp_path, targets=[runtime], precisions=["int8"],
                 threads=2, log=lambda m: None, calib=ann, calib_images=images, int8_options=options,
                 allow_accuracy_loss=True)
    art = read_manifest(tmp_path).find({"onnx": "onnxruntime"}.get(runtime, runtime), "int8")
    extra, validation = art.extra, art.validation
    assert extra["selection"] and all(0 <= step["probe_within_2px"] <= 1 for step in extra["selection"])
    assert extra["selection"][-1].get("gate_passed") == validation["gate_passed"]
    assert len(extra["fp_layers"]) <= 4 and validation["n_crops"] >= 24
    # a real quantisation: close to fp32 on held-out crops, not identical
    assert 0.5 < validation["within_2px"] < 1.0 and validation["max_logit_diff"] > 1e-3
