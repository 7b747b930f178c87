"""ncnn export (pnnx from TorchScript and from official-layout ONNX files) and the ncnn runtime."""
import importlib.util
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("ncnn")
pytest.importorskip("pnnx")

from dwpose_edge.errors import ExportError, InputError, ModelFileError, ParityError  # noqa: E402
from dwpose_edge.export import to_ncnn  # noqa: E402
from dwpose_edge.export.to_ncnn import export_ncnn, onnx_to_ncnn, prepare_onnx_for_pnnx  # noqa: E402
from dwpose_edge.export.validate import THRESHOLDS, validation_crops  # noqa: E402
from dwpose_edge.models import build_model  # noqa: E402
from dwpose_edge.preprocess import crop_boxes  # noqa: E402
from dwpose_edge.runtimes.ncnn_runtime import NcnnRuntime, read_param  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ONNX_KW = dict(input_names=["input"], output_names=["simcc_x", "simcc_y"])
DYNAMIC = {"input": {0: "batch"}, "simcc_x": {0: "batch"}, "simcc_y": {0: "batch"}}


def random_model(name: str, seed: int = 3):
    """Seeded random weights with perturbed BN statistics (running_var U[0.75,1.25], running_mean N(0,0.1))."""
    torch.manual_seed(seed)
    model = build_model(name)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if k.endswith("running_var"):
                v.copy_(torch.rand(v.shape, generator=g) * 0.5 + 0.75)
            elif k.endswith("running_mean"):
                v.copy_(torch.randn(v.shape, generator=g) * 0.1)
    return model.eval()


def torch_infer(model, batch):
    with torch.inference_mode():
        x, y = model(torch.from_numpy(batch))
    return x.numpy(), y.numpy()


def check_export(model, files, precision):
    param, bin_ = files
    assert param.name == f"{model.spec.name}_{model.spec.input_size[1]}x{model.spec.input_size[0]}_{precision}.ncnn.param"
    assert bin_.suffix == ".bin" and param.parent == bin_.parent
    assert sorted(p.name for p in param.parent.iterdir() if p.name.startswith(".pnnx")) == []  # temp dir gone
    a = files.agreement
    assert a.n_crops >= 13
    assert a.within_1px >= THRESHOLDS[precision][1], a
    if precision == "fp32":
        assert a.within_1px == 1.0 and a.max_logit_diff < 5e-3, a
    else:
        assert a.max_logit_diff < 2.0, a
    assert files.info["outputs"] == {"simcc_x": "out0", "simcc_y": "out1"} and files.info["input_blob"] == "in0"
    assert (param.parent / param.name.replace(".ncnn.param", ".ncnn.json")).is_file()


# --------------------------------------------------------------------------------------------- torch route


@pytest.fixture(scope="module", params=["dwpose-t", "dwpose-s"])
def torch_exports(request, tmp_path_factory):
    model = random_model(request.param)
    out = tmp_path_factory.mktemp(f"ncnn-{request.param}")
    return model, {p: export_ncnn(model, out, p) for p in ("fp32", "fp16")}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_export_agrees_with_torch(torch_exports, precision):
    model, files = torch_exports
    check_export(model, files[precision], precision)


def test_fp32_logits_match_torch_on_photo_and_random(torch_exports, grace_hopper):
    model, files = torch_exports
    rt = NcnnRuntime(*files["fp32"])
    assert rt.input_size == model.spec.input_size and rt.precision == "fp32"
    photo, _, _ = crop_boxes(grace_hopper, np.array([[100, 30, 450, 600]], np.float32), model.spec.input_size)
    w, h = model.spec.input_size
    batch = np.concatenate([photo, np.random.default_rng(5).standard_normal((2, 3, h, w)).astype(np.float32)])
    ref, got = torch_infer(model, batch), rt.infer(batch)
    for r, g in zip(ref, got):
        assert r.shape == g.shape
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-5 * float(np.abs(r).max()) + 1e-4)
        assert (r.argmax(-1) == g.argmax(-1)).mean() == 1.0


def test_batch_of_three_equals_three_singles(torch_exports):
    model, files = torch_exports
    rt = NcnnRuntime(*files["fp32"], threads=1)
    batch = validation_crops(model.spec.input_size, n_random=2)[:3]
    bx, by = rt.infer(batch)
    assert bx.shape == (3, 133, 2 * model.spec.input_size[0]) and by.shape == (3, 133, 2 * model.spec.input_size[1])
    for i in range(3):
        sx, sy = rt.infer(batch[i:i + 1])
        np.testing.assert_array_equal(sx[0], bx[i])
        np.testing.assert_array_equal(sy[0], by[i])


def test_concurrent_infer_from_threads(torch_exports):
    model, files = torch_exports
    rt = NcnnRuntime(*files["fp32"], threads=1)
    batch = validation_crops(model.spec.input_size, n_random=2)[:4]
    want = rt.infer(batch)
    got, errors = {}, []

    def work(i):
        try:
            for _ in range(2):
                got[i] = rt.infer(batch[i:i + 1])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    for i in range(4):
        np.testing.assert_array_equal(got[i][0][0], want[0][i])


def test_param_records_input_size_and_blobs(torch_exports):
    model, files = torch_exports
    info = read_param(files["fp32"].param)
    w, h = model.spec.input_size
    assert info.input_blob == "in0" and info.input_shape == (3, h, w)
    assert set(info.output_blobs) == {"out0", "out1"}
    with pytest.raises(ModelFileError, match="another model size"):
        NcnnRuntime(*files["fp32"], input_size=(288, 384))
    with pytest.raises(InputError, match="precision"):
        NcnnRuntime(*files["fp32"], precision="bf16")
    with pytest.raises(ModelFileError, match="is a float ncnn model but precision='int8'"):
        NcnnRuntime(*files["fp32"], precision="int8")
    assert not info.int8
    rt = NcnnRuntime(*files["fp32"])
    with pytest.raises(InputError):
        rt.infer(np.zeros((1, 3, 10, 10), np.float32))


# --------------------------------------------------------------------------------------------- corrupt files


@pytest.fixture(scope="module")
def t_fp32(tmp_path_factory):
    model = random_model("dwpose-t", seed=11)
    return export_ncnn(model, tmp_path_factory.mktemp("ncnn-corrupt"), "fp32")


def _corrupt(tmp_path, files, param=None, bin_=None):
    p, b = tmp_path / "m.param", tmp_path / "m.bin"
    p.write_bytes(param if param is not None else files.param.read_bytes())
    b.write_bytes(bin_ if bin_ is not None else files.bin.read_bytes())
    return p, b


@pytest.mark.parametrize("what", ["bin_truncated", "bin_half", "bin_extra", "bin_empty", "param_empty",
                                  "param_garbage", "param_truncated", "param_bad_line", "param_binary"])
def test_corrupt_files_raise_model_file_error(t_fp32, tmp_path, what):
    param, bin_ = t_fp32.param.read_bytes(), t_fp32.bin.read_bytes()
    variants = {
        "bin_truncated": dict(bin_=bin_[:-4]),
        "bin_half": dict(bin_=bin_[:len(bin_) // 2]),
        "bin_extra": dict(bin_=bin_ + b"\0" * 64),
        "bin_empty": dict(bin_=b""),
        "param_empty": dict(param=b""),
        "param_garbage": dict(param=b"\x00\x01garbage\n"),
        "param_truncated": dict(param=param[:len(param) // 2]),
        "param_bad_line": dict(param=param.replace(b"Convolution", b"Convolution 1 x", 1)),
        "param_binary": dict(param=bytes(range(256)) * 4),
    }
    p, b = _corrupt(tmp_path, t_fp32, **variants[what])
    with pytest.raises(ModelFileError):
        NcnnRuntime(p, b)


def test_missing_files(t_fp32, tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        NcnnRuntime(tmp_path / "nope.param", t_fp32.bin)
    with pytest.raises(ModelFileError, match="not found"):
        NcnnRuntime(t_fp32.param, tmp_path / "nope.bin")


def test_weights_of_another_model_are_refused(t_fp32, torch_exports):
    model, files = torch_exports
    if model.spec.name == "dwpose-t":
        pytest.skip("same graph")
    with pytest.raises(ModelFileError):
        NcnnRuntime(t_fp32.param, files["fp32"].bin)
    with pytest.raises(ModelFileError):
        NcnnRuntime(files["fp32"].param, t_fp32.bin)


# --------------------------------------------------------------------------------------------- ONNX route


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    """dwpose-t with random weights, exported WITHOUT our exporter in the layouts found in the wild."""
    tmp = tmp_path_factory.mktemp("official-onnx")
    model = random_model("dwpose-t", seed=21)
    x = torch.randn(1, 3, 256, 192)
    files = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files["legacy17"] = tmp / "legacy17.onnx"
        torch.onnx.export(model, (x,), str(files["legacy17"]), dynamo=False, opset_version=17,
                          dynamic_axes=DYNAMIC, do_constant_folding=False, **ONNX_KW)
        files["mmdeploy11"] = tmp / "mmdeploy11.onnx"  # mmdeploy's defaults: opset 11, folded constants
        torch.onnx.export(model, (x,), str(files["mmdeploy11"]), dynamo=False, opset_version=11,
                          dynamic_axes=DYNAMIC, do_constant_folding=True, **ONNX_KW)
        files["legacy18"] = tmp / "legacy18.onnx"  # Reduce axes as Constant-node inputs
        torch.onnx.export(model, (x,), str(files["legacy18"]), dynamo=False, opset_version=18,
                          dynamic_axes=DYNAMIC, do_constant_folding=False, **ONNX_KW)
        if importlib.util.find_spec("onnxscript"):  # the dynamo exporter needs it
            files["dynamo18"] = tmp / "dynamo18.onnx"  # Reduce axes as initializer inputs
            torch.onnx.export(model, (x,), str(files["dynamo18"]), dynamo=True, opset_version=18,
                              dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=64)}},
                              external_data=False, **ONNX_KW)
    return files


@pytest.mark.parametrize("layout,precision", [("legacy17", "fp32"), ("legacy17", "fp16"), ("mmdeploy11", "fp32"),
                                              ("legacy18", "fp32"), ("dynamo18", "fp32"), ("dynamo18", "fp16")])
def test_official_layout_onnx_converts_and_agrees_with_onnxruntime(onnx_files, layout, precision, tmp_path):
    if layout not in onnx_files:
        pytest.skip("the dynamo exporter needs onnxscript")
    import onnxruntime as ort

    src = onnx_files[layout]
    files = onnx_to_ncnn(src, tmp_path, precision)
    assert files.param.name == f"{layout}_256x192_{precision}.ncnn.param"
    a = files.agreement
    assert a.within_1px >= THRESHOLDS[precision][1], a
    if precision == "fp32":
        assert a.within_1px == 1.0 and a.max_logit_diff < 5e-3, a
        sess = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
        batch = np.random.default_rng(9).standard_normal((2, 3, 256, 192)).astype(np.float32)
        ref = sess.run(["simcc_x", "simcc_y"], {"input": batch})
        got = NcnnRuntime(*files).infer(batch)
        for r, g in zip(ref, got):
            np.testing.assert_allclose(g, r, rtol=0, atol=1e-5 * float(np.abs(r).max()) + 1e-4)
    assert "onnxruntime" in files.info["reference"]


def test_naive_pnnx_on_opset18_onnx_builds_a_wrong_model(onnx_files, tmp_path):
    """Documents the pnnx bug the ONNX rewrite works around: 1-element Reduce axes inputs are dropped."""
    src = onnx_files.get("dynamo18", onnx_files["legacy18"])
    param, _, _ = to_ncnn._run_pnnx(src, (192, 256), False, tmp_path)
    reductions = [ln for ln in param.read_text().splitlines() if ln.startswith("Reduction") and " 0=8 " in ln]
    if not any("-23303=0" in ln for ln in reductions):
        pytest.skip("this pnnx converts opset-18 ReduceL2 axes correctly; the rewrite is no longer needed")
    assert len(reductions) == 2  # both ScaleNorms lost their axis


def test_validation_catches_the_naive_route(onnx_files, tmp_path, monkeypatch):
    """Without the rewrite, the conversion must fail parity instead of writing a wrong model."""
    src = onnx_files.get("dynamo18", onnx_files["legacy18"])
    monkeypatch.setattr(to_ncnn, "prepare_onnx_for_pnnx", lambda proto, size: (proto, ["none"]))
    with pytest.raises(ParityError, match="within 1 px"):
        onnx_to_ncnn(src, tmp_path, "fp32")
    assert not list(tmp_path.glob("*.param")) and not list(tmp_path.glob("*.bin"))


def _tiny_reduce_model(op, opset, axes):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.uniform(0.5, 1, (5, 3, 1, 1)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([1, 5, 24], np.int64), "shape")]
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"]), helper.make_node("Reshape", ["c", "shape"], ["f"])]
    if opset >= 18 or op == "ReduceSum":
        inits.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
        nodes.append(helper.make_node(op, ["f", "axes"], ["r"], keepdims=1))
    else:
        nodes.append(helper.make_node(op, ["f"], ["r"], keepdims=1, axes=axes))
    nodes.append(helper.make_node("Div", ["f", "r"], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 24])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("op,opset", [("ReduceL2", 18), ("ReduceMean", 18), ("ReduceL1", 18), ("ReduceSum", 13),
                                      ("ReduceSum", 18)])
@pytest.mark.parametrize("axes", [[-1], [1]])
def test_rewrite_makes_single_axis_reduce_convert_correctly(op, opset, axes, tmp_path):
    import ncnn
    import onnx
    import onnxruntime as ort

    proto = _tiny_reduce_model(op, opset, axes)
    fixed, notes = prepare_onnx_for_pnnx(proto, (6, 4))
    onnx.save(fixed, str(tmp_path / "m.onnx"))
    x = np.random.default_rng(0).uniform(0.5, 2, (1, 3, 4, 6)).astype(np.float32)
    cpu = ["CPUExecutionProvider"]
    want = ort.InferenceSession(proto.SerializeToString(), providers=cpu).run(None, {"input": x})[0]
    again = ort.InferenceSession(fixed.SerializeToString(), providers=cpu).run(None, {"input": x})[0]
    np.testing.assert_allclose(again, want, rtol=1e-6, atol=1e-6)
    param, bin_, _ = to_ncnn._run_pnnx(tmp_path / "m.onnx", (6, 4), False, tmp_path)
    net = ncnn.Net()
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    assert net.load_param(str(param)) == 0 and net.load_model(str(bin_)) == 0
    ex = net.create_extractor()
    ex.input("in0", ncnn.Mat(x[0]).clone())
    ret, out = ex.extract("out0")
    assert ret == 0
    np.testing.assert_allclose(np.array(out), want[0], rtol=1e-5, atol=1e-5)


def test_onnx_input_checks(onnx_files, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ModelFileError):
        onnx_to_ncnn(bad, tmp_path)
    with pytest.raises(InputError):
        onnx_to_ncnn(onnx_files["legacy17"], tmp_path, precision="int8")
    with pytest.raises(ModelFileError, match="another model size"):
        onnx_to_ncnn(onnx_files["legacy17"], tmp_path, input_size=(288, 384))


def test_unsupported_new_op_is_refused_with_advice():
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Col2Im", ["input", "s", "b"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [onnx.numpy_helper.from_array(np.array([4, 6], np.int64), "s"),
                               onnx.numpy_helper.from_array(np.array([1, 1], np.int64), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(ExportError, match="opset 17"):
        prepare_onnx_for_pnnx(model, (6, 4))


def test_script_mode(onnx_files, tmp_path):
    """`python export/to_ncnn.py` works (the export/ folder first on sys.path must not shadow packages)."""
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, str(REPO / "export" / "to_ncnn.py"), "--onnx",
                           str(onnx_files["legacy17"]), "--out", str(out), "--name", "dwpose-t"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "dwpose-t_256x192_fp32.ncnn.param").is_file() and "within 1 px" in proc.stdout


# --------------------------------------------------------------------------------------------- larger sizes


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dwpose-m", "dwpose-l", "dwpose-l-384"])
def test_large_models_export(name, tmp_path):
    model = random_model(name)
    for precision in ("fp32", "fp16"):
        check_export(model, export_ncnn(model, tmp_path, precision), precision)


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["mmdeploy11", "dynamo18"])
def test_l384_official_layout_onnx(exporter, tmp_path):
    """The layout of the released dw-ll_ucoco_384.onnx (288x384), from both exporter families."""
    model = random_model("dwpose-l-384", seed=5)
    src = tmp_path / f"dw-ll_ucoco_384_{exporter}.onnx"
    x = torch.randn(1, 3, 384, 288)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "mmdeploy11":
            torch.onnx.export(model, (x,), str(src), dynamo=False, opset_version=11, dynamic_axes=DYNAMIC,
                              do_constant_folding=True, **ONNX_KW)
        else:
            pytest.importorskip("onnxscript")
            torch.onnx.export(model, (x,), str(src), dynamo=True, opset_version=18, external_data=False,
                              dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=64)}}, **ONNX_KW)
    files = onnx_to_ncnn(src, tmp_path / "out", "fp32")
    assert files.param.name == f"{src.stem}_384x288_fp32.ncnn.param"
    assert files.agreement.within_1px == 1.0 and files.agreement.max_logit_diff < 5e-3, files.agreement
    assert NcnnRuntime(*files).input_size == (288, 384)
