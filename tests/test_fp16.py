"""fp16 means fp16 storage with fp32 arithmetic on every CPU: ARMv8.2 cores compute fp16 models in fp16 otherwise,
which moved this model's keypoints in the ARM lane (onnxruntime 79.5%, ncnn 86.7% within 1 px on neoverse-n1).
Here: what each fp16 artifact holds and how each runtime opens it; the ARM lane measures the numbers there."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

import shared_models
from dwpose_edge.errors import ExportError
from dwpose_edge.export.onnx_fp16 import MIN_ELEMENTS, convert_onnx_fp16
from dwpose_edge.manifest import read_manifest

pytestmark = pytest.mark.skipif(not shared_models.installed("torch"), reason="exports start from the torch model")


@pytest.mark.skipif(not shared_models.installed("onnxruntime"), reason="onnxruntime is not installed")
def test_onnxruntime_fp16_stores_weights_in_fp16_and_computes_in_fp32(tmp_path):
    src = shared_models.model_dir("onnxruntime") / read_manifest(shared_models.model_dir("onnxruntime")).find(
        "onnxruntime", "fp32").files["model"]
    dst = convert_onnx_fp16(src, tmp_path / "fp16.onnx")
    fp32, fp16 = onnx.load(str(src)), onnx.load(str(dst))
    big = [i for i in fp32.graph.initializer if i.data_type == TensorProto.FLOAT and np.prod(i.dims) >= MIN_ELEMENTS]
    stored = {i.name: i for i in fp16.graph.initializer}
    for init in big:  # every weight in fp16, cast back to its fp32 name, values equal to the fp16 rounding
        half = stored[f"{init.name}__fp16"]
        assert half.data_type == TensorProto.FLOAT16
        np.testing.assert_array_equal(numpy_helper.to_array(half), numpy_helper.to_array(init).astype(np.float16))
    casts = [n for n in fp16.graph.node if n.op_type == "Cast"]
    assert len(casts) == len(big) and all(n.attribute[0].i == TensorProto.FLOAT for n in casts)
    assert [n for n in fp16.graph.node if n.op_type != "Cast"] == list(fp32.graph.node)  # the same fp32 graph
    assert dst.stat().st_size < 0.55 * src.stat().st_size


def test_fp16_conversion_refuses_weights_beyond_fp16_range(tmp_path):
    w = np.full((8, 8), 1e6, np.float32)
    graph = onnx.helper.make_graph([onnx.helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                                   [onnx.helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
                                   [numpy_helper.from_array(w, "w")])
    onnx.save(onnx.helper.make_model(graph), str(tmp_path / "big.onnx"))
    with pytest.raises(ExportError, match="exceeds fp16's range"):
        convert_onnx_fp16(tmp_path / "big.onnx", tmp_path / "out.onnx")


@pytest.mark.skipif(not shared_models.installed("ncnn"), reason="ncnn is not installed")
def test_ncnn_fp16_uses_fp16_storage_and_fp32_arithmetic():
    rt = shared_models.estimator("ncnn", precision="fp16").runtime
    opt = rt.net.opt
    assert opt.use_fp16_storage and opt.use_fp16_packed and not opt.use_fp16_arithmetic
    assert not shared_models.estimator("ncnn").runtime.net.opt.use_fp16_storage  # fp32: no fp16 path at all


@pytest.mark.skipif(not shared_models.installed("openvino"), reason="openvino is not installed")
def test_openvino_fp16_on_the_cpu_computes_in_f32():
    rt = shared_models.estimator("openvino", precision="fp16").runtime
    assert rt.inference_precision in ("f32", "<Type: 'float32'>")
