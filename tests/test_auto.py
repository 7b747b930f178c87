"""runtime='auto' / precision='auto' (dwpose_edge/auto.py): candidates, measurement, gate, cache, Estimator and CLI."""
from __future__ import annotations

import importlib.util
import json

import pytest

from dwpose_edge import Estimator
from dwpose_edge.auto import choose, default_candidates, parse_pairs, resolve
from dwpose_edge.errors import InputError
from dwpose_edge.runtimes.cpu_features import has_bf16

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed")
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
needs_bf16 = pytest.mark.skipif(not has_bf16(), reason="this CPU has neither avx512_bf16 nor amx_bf16 (no bf16)")

OLD_X86 = {"fpu", "sse2", "avx2", "avx512f", "avx512bw", "avx512_vnni"}  # AVX-512 with VNNI, without bf16
FP32_ONLY = ("onnxruntime/fp32", "openvino/fp32")


@needs_openvino
def test_default_candidates_follow_the_cpu_and_the_weights():
    bf16_cpu = OLD_X86 | {"avx512_bf16"}
    assert default_candidates(None, flags=OLD_X86) == (("onnxruntime", "fp32"), ("openvino", "fp32"))
    assert default_candidates(None, flags=bf16_cpu) == (("onnxruntime", "fp32"), ("openvino", "fp32"),
                                                        ("openvino", "bf16"))
    # a checkpoint runs on torch too; ncnn (slow on x86) and int8 (minutes of calibration) only when named
    if importlib.util.find_spec("torch") is not None:
        assert ("torch", "bf16") in default_candidates("model.pth", flags=bf16_cpu)
        assert ("torch", "bf16") not in default_candidates("model.pth", flags=OLD_X86)
    for onnx_like in ("model.onnx", "sdk.zip"):  # ONNX / OpenMMLab SDK zips do not run on torch
        assert all(r != "torch" for r, _ in default_candidates(onnx_like, flags=bf16_cpu))
    assert default_candidates(None, "openvino", flags=bf16_cpu) == (("openvino", "fp32"), ("openvino", "bf16"))
    assert default_candidates(None, "auto", "int8", flags=OLD_X86)[:2] == (("onnxruntime", "int8"),
                                                                         ("openvino", "int8"))
    with pytest.raises(InputError, match=r"no installed runtime runs openvino/bf16"):
        default_candidates(None, "openvino", "bf16", flags=OLD_X86)


def test_candidates_are_checked_against_the_table():
    assert parse_pairs(["openvino/bf16", ("onnxruntime", "fp32"), "openvino/bf16"]) == (
        ("openvino", "bf16"), ("onnxruntime", "fp32"))
    with pytest.raises(InputError, match=r"onnxruntime runtime has no bf16"):
        parse_pairs(["onnxruntime/bf16"])
    with pytest.raises(InputError, match=r"'runtime/precision'"):
        parse_pairs(["openvino"])
    with pytest.raises(InputError, match=r"not a model_dir"):
        resolve("dwpose-t", None, "auto", "auto", model_dir="somewhere")
    with pytest.raises(InputError, match=r"CPU runtimes"):
        resolve("dwpose-t", None, "auto", "fp32", device="cuda:0")
    with pytest.raises(InputError, match=r"unknown precision 'fp8'"):
        resolve("dwpose-t", None, "auto", "fp8")


@needs_openvino
def test_choose_without_bf16_measures_keeps_the_fastest_and_caches(tmp_path):
    """A CPU without bf16 is what the restricted candidates give: two fp32 runtimes, really timed."""
    decision = choose("dwpose-t", None, FP32_ONLY, threads=1, cache_folder=tmp_path)
    assert not decision.cached and {(t.runtime, t.precision) for t in decision.trials} == {
        ("onnxruntime", "fp32"), ("openvino", "fp32")}
    assert all(t.ok and t.ms_per_crop > 0 and t.within_1px >= 0.995 for t in decision.trials)
    assert decision.chosen.ms_per_crop == min(t.ms_per_crop for t in decision.trials)
    assert decision.precision == "fp32" and decision.batch == 8 and decision.threads == 1
    assert "fastest of 2 candidate(s)" in decision.summary()
    files = list(tmp_path.glob("dwpose-t_*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["runtime"] == decision.runtime
    again = choose("dwpose-t", None, FP32_ONLY[::-1], threads=1, cache_folder=tmp_path)  # same set: same key
    assert again.cached and again.trials == decision.trials and "cached decision" in again.summary()
    # another thread count or candidate set is another decision
    assert choose("dwpose-t", None, FP32_ONLY[:1], threads=1, cache_folder=tmp_path).key != decision.key
    files[0].write_text("{not json")  # an unreadable cache file is measured again
    assert not choose("dwpose-t", None, FP32_ONLY, threads=1, cache_folder=tmp_path).cached


@needs_openvino
@needs_bf16
def test_choose_takes_bf16_on_a_bf16_cpu_when_it_is_faster(tmp_path):
    decision = choose("dwpose-t", None, threads=1, cache_folder=tmp_path)
    trials = {(t.runtime, t.precision): t for t in decision.trials}
    bf16, fp32 = trials["openvino", "bf16"], trials["openvino", "fp32"]
    assert bf16.ok and 0.95 <= bf16.within_2px < 1.0  # passes its gate, and really is another precision
    assert decision.chosen.ms_per_crop == min(t.ms_per_crop for t in decision.trials if t.ok)
    # measured 1.6-1.8x on this CPU; a decision for fp32 here would mean the measurement is broken
    assert bf16.ms_per_crop < fp32.ms_per_crop and decision.precision == "bf16"


@needs_openvino
@needs_torch
@needs_bf16
def test_a_candidate_failing_its_gate_is_dropped_with_its_figures(tmp_path):
    """The BN-calibrated untrained test model has near-tied peaks: bf16 moves ~19% of its keypoints by > 2 px,
    so both bf16 candidates fail their gate and the decision is an fp32 one."""
    from shared_models import checkpoint

    decision = choose("dwpose-t", str(checkpoint()), ["torch/fp32", "torch/bf16", "openvino/bf16"], threads=1,
                      cache_folder=tmp_path)
    trials = {(t.runtime, t.precision): t for t in decision.trials}
    for pair in (("torch", "bf16"), ("openvino", "bf16")):
        assert not trials[pair].ok and "ParityError" in trials[pair].error and "within 2 px" in trials[pair].error
    assert (decision.runtime, decision.precision) == ("torch", "fp32")
    assert "dropped (ParityError" in decision.summary()


@needs_openvino
def test_estimator_and_cli_auto(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DWPOSE_EDGE_CACHE", str(tmp_path))
    est = Estimator(runtime="openvino", precision="auto", threads=1)
    assert est.decision is not None and est.decision.runtime == "openvino"
    assert (est.runtime.name, est.runtime.precision) == ("openvino", est.decision.precision)
    assert Estimator(threads=1).decision is None
    assert list((tmp_path / "auto").glob("*.json"))

    from dwpose_edge.cli import main
    from dwpose_edge.data import DATA_DIR

    assert main(["predict", str(DATA_DIR / "astronaut.jpg"), "--runtime", "auto", "--precision", "fp32",
                 "--threads", "1", "--out", str(tmp_path / "out.json")]) == 0
    err = capsys.readouterr().err
    assert "auto: " in err and "onnxruntime/fp32:" in err and "openvino/fp32:" in err
