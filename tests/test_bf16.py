"""bf16 on CPUs that compute it: the runtimes x precisions table, the instruction-set refusal, OpenVINO's bf16 gate."""
from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest

from dwpose_edge import Estimator
from dwpose_edge.data import DATA_DIR
from dwpose_edge.errors import InputError, ParityError, RuntimeUnavailableError
from dwpose_edge.export.validate import THRESHOLDS, agreement, run_batched, validation_crops
from dwpose_edge.runtimes import precisions as table
from dwpose_edge.runtimes.cpu_features import has_bf16

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed")
needs_bf16 = pytest.mark.skipif(not has_bf16(), reason="this CPU has neither avx512_bf16 nor amx_bf16 (no bf16 compute)")

OLD_X86 = {"fpu", "sse2", "avx2", "avx512f", "avx512bw"}  # an AVX-512 CPU without its bf16 extension


def test_table_drives_every_list():
    """CLI, export, INT8 export and bench read the one table, so they agree by construction."""
    from dwpose_edge.bench import runner
    from dwpose_edge.cli import build_parser
    from dwpose_edge.export import int8, pipeline
    from dwpose_edge.runtimes.base import FILE_ROLES, RUNTIMES

    assert tuple(RUNTIMES) == table.RUNTIMES == runner.RUNTIMES
    assert set(FILE_ROLES) == set(table.FILE_RUNTIMES) == {"onnxruntime", "openvino", "ncnn", "litert"}
    assert pipeline.ALL_PRECISIONS == ("fp32", "fp16", "bf16", "int8") and pipeline.PRECISIONS == ("fp32", "fp16")
    assert int8.RUNTIMES == ("onnxruntime", "openvino", "ncnn", "litert") == table.runtimes_of("int8")
    assert table.precisions_of("openvino") == ("fp32", "fp16", "bf16", "int8")
    assert table.precisions_of("torch") == ("fp32", "fp16", "bf16")
    assert table.runtimes_of("bf16") == ("torch", "openvino") and table.runtimes_of("bf16", files_only=True) == (
        "openvino",)
    predict = build_parser().parse_args(["predict", "x.jpg", "--runtime", "openvino", "--precision", "bf16"])
    assert (predict.runtime, predict.precision) == ("openvino", "bf16")
    # bf16 runs the fp32 IR: no file of its own
    assert table.support("openvino", "bf16").file_precision == "fp32"


def test_table_refuses_pairs_it_lacks():
    with pytest.raises(InputError, match=r"onnxruntime runtime has no bf16.*bf16 runs on \['torch', 'openvino'\]"):
        table.support("onnxruntime", "bf16")
    with pytest.raises(InputError, match=r"openvino runtime runs on the CPU only for bf16"):
        table.support("openvino", "bf16", "GPU")
    with pytest.raises(InputError, match=r"torch runtime runs on the CPU only for bf16"):
        table.support("torch", "bf16", "cuda")
    with pytest.raises(InputError, match=r"unknown precision 'fp8'"):
        table.support("openvino", "fp8")
    with pytest.raises(InputError, match=r"onnxruntime runtime has no bf16"):
        Estimator(weights="random", runtime="onnxruntime", precision="bf16")


def test_bf16_flags():
    assert has_bf16({"avx512f", "avx512_bf16"}) and has_bf16({"amx_bf16", "amx_tile"})
    assert not has_bf16(OLD_X86) and not has_bf16(set())


def test_cpu_without_bf16_is_refused_naming_the_instruction_set():
    with pytest.raises(RuntimeUnavailableError, match=r"avx512_bf16.*amx_bf16.*precision='fp32'"):
        table.check_cpu_feature("openvino", "bf16", flags=OLD_X86)
    table.check_cpu_feature("openvino", "bf16", flags=OLD_X86 | {"avx512_bf16"})  # no error
    table.check_cpu_feature("openvino", "fp32", flags=OLD_X86)  # fp32 needs nothing
    with pytest.raises(RuntimeUnavailableError, match=r"torch precision='bf16' needs a CPU with bf16.*avx512_bf16"):
        table.check_cpu_feature("torch", "bf16", flags=OLD_X86)
    assert "AVX512-BF16" in table.cpu_feature_missing("openvino", "bf16", flags=OLD_X86)


def test_bench_rows_follow_the_table():
    from dwpose_edge.bench.runner import skip_reason

    assert skip_reason("torch", "fp16", "cpu", False).startswith("torch fp16 runs on CUDA only")
    assert skip_reason("onnxruntime", "bf16", "cpu", False).startswith("onnxruntime bf16 is not a supported runtime")
    if importlib.util.find_spec("openvino") is not None:
        assert skip_reason("openvino", "bf16", "cpu", False) == (None if has_bf16() else
                                                                  table.cpu_feature_missing("openvino", "bf16"))


@needs_openvino
@needs_bf16
def test_openvino_bf16_estimator_passes_the_gate_and_computes_in_bf16():
    """The embedded model, exported once into the cache: the compiled model really computes bf16, and its
    keypoints follow fp32 within the gate on held-out photo crops (not the export's validation crops)."""
    import openvino as ov

    bf16 = Estimator(runtime="openvino", precision="bf16", threads=1)
    fp32 = Estimator(runtime="openvino", precision="fp32", threads=1)
    assert bf16.runtime.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16
    assert fp32.runtime.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    crops = validation_crops(bf16.input_size, n_random=40, seed=1)  # 44 crops the gate never saw
    got = agreement(run_batched(fp32.infer_crops, crops), run_batched(bf16.infer_crops, crops))
    radius, fraction = THRESHOLDS["bf16"]
    assert radius == 2.0 and got.within_2px >= fraction  # measured 97.7%
    assert got.within_1px < 1.0 and 0 < got.max_logit_diff < 0.1  # really a different precision, close logits
    image = cv2.imread(str(DATA_DIR / "astronaut.jpg"))
    assert np.median(np.abs(bf16(image).keypoints - fp32(image).keypoints)) < 2.0


@needs_openvino
@needs_bf16
def test_openvino_bf16_gate_refuses_a_model_bf16_moves(tmp_path):
    """The BN-calibrated untrained test model has near-tied SimCC peaks: bf16 moves ~19% of its keypoints by
    more than 2 px (measured), so the export gate must refuse it."""
    from shared_models import checkpoint

    from dwpose_edge.export.pipeline import export_model

    with pytest.raises(ParityError, match=r"openvino/bf16 export disagrees.*within 2 px \(needs >= 95.0%\)"):
        export_model("dwpose-t", str(checkpoint()), tmp_path, targets=["openvino"], precisions=["bf16"], threads=1,
                     log=lambda m: None)


needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")


@needs_torch
def test_torch_bf16_refuses_other_devices():
    from dwpose_edge.models import load_model
    from dwpose_edge.runtimes.torch_runtime import TorchRuntime

    with pytest.raises(InputError, match=r"torch bf16 runs on the CPU only"):
        TorchRuntime(load_model("dwpose-t", "random"), device="meta", precision="bf16")


@needs_torch
@needs_bf16
def test_torch_bf16_follows_fp32_within_the_gate_with_fp32_logits():
    """Autocast bf16 + channels_last on the embedded model, 44 photo crops: within the gate (measured 96.8%),
    really bf16 (logits move), and the SimCC classifiers still return fp32-resolution logits; plain autocast
    (classifiers in bf16, bf16 logits) loses ~5 points (measured 92.1%)."""
    import torch

    from dwpose_edge.models import load_model
    from dwpose_edge.runtimes.torch_runtime import TorchRuntime

    rt = TorchRuntime(load_model("dwpose-t"), precision="bf16", threads=1)
    crops = validation_crops(rt.input_size, n_random=40, seed=1)
    ref = run_batched(rt.reference, crops)
    got = run_batched(rt.infer, crops)
    ours = agreement(ref, got)
    assert ours.within_2px >= THRESHOLDS["bf16"][1] and ours.within_1px < 1.0 and 0 < ours.max_logit_diff < 0.1
    logits = torch.from_numpy(got[0])
    assert (logits.bfloat16().float() != logits).float().mean() > 0.9  # not bf16 values

    plain = load_model("dwpose-t").to(memory_format=torch.channels_last).eval()

    def autocast_all(batch):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            x, y = plain(torch.from_numpy(batch).contiguous(memory_format=torch.channels_last))
        return x.float().numpy(), y.float().numpy()

    assert ours.within_2px > agreement(ref, run_batched(autocast_all, crops)).within_2px + 0.02


@needs_torch
@needs_bf16
def test_torch_bf16_estimator_is_validated_against_fp32():
    """Autocast has no export to gate it: the Estimator checks it on the bundled crops when it opens. The embedded
    model passes (measured 97.4% within 2 px); the BN-calibrated untrained test model, with its near-tied peaks,
    does not."""
    from shared_models import checkpoint

    est = Estimator(runtime="torch", precision="bf16", threads=1)
    assert est.runtime.precision == "bf16" and est.runtime.autocast
    image = cv2.imread(str(DATA_DIR / "astronaut.jpg"))
    fp32 = Estimator(runtime="torch", threads=1)
    assert np.median(np.abs(est(image).keypoints - fp32(image).keypoints)) < 2.0
    with pytest.raises(ParityError, match=r"torch/bf16 disagrees with the reference: .* within 2 px \(needs >= 95.0%\)"):
        Estimator(weights=str(checkpoint()), runtime="torch", precision="bf16", threads=1)
