"""runtime='auto' / precision='auto' (dwpose_edge/auto.py): candidates, measurement, gate, cache, Estimator and CLI."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
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


# --- OpenVINO bf16 on an ONNX file: a candidate on bf16 CPUs, opened without export, gated on open ----------

def test_bf16_cpu_weighs_openvino_bf16_for_the_embedded_model_and_any_onnx():
    """Candidate selection for a CPU with bf16, decided from flags (this CPU may lack bf16: nothing runs here)."""
    bf16_cpu = OLD_X86 | {"amx_bf16"}
    for weights in (None, "model.onnx", "sdk.zip"):
        with_bf16 = default_candidates(weights, flags=bf16_cpu)
        without = default_candidates(weights, flags=OLD_X86)
        if importlib.util.find_spec("openvino") is not None:
            assert ("openvino", "bf16") in with_bf16
        assert ("openvino", "bf16") not in without and all(p == "fp32" for _, p in without)
    if importlib.util.find_spec("openvino") is not None:  # RTMW (ONNX only) too
        assert ("openvino", "bf16") in default_candidates(None, flags=bf16_cpu, model="rtmw-m-256x192")


class _FakeRuntime:
    """An opened runtime without a model: SimCC logits peaking at fixed places, `shift` bins off for bf16."""

    def __init__(self, runtime, files, precision="fp32", shift=0, **kwargs):
        self.name, self.files, self.precision, self.kwargs = runtime, files, precision, kwargs
        self.input_size, self.shift = kwargs.get("input_size") or (192, 256), shift

    def infer(self, batch):
        n = len(batch)
        x = np.zeros((n, 133, self.input_size[0] * 2), np.float32)
        y = np.zeros((n, 133, self.input_size[1] * 2), np.float32)
        x[:, :, 100 + self.shift], y[:, :, 200] = 1.0, 1.0
        return x, y


@pytest.mark.parametrize("shift, passes", [(0, True), (10, False)])
def test_openvino_bf16_opens_the_onnx_directly_and_is_gated_on_open(monkeypatch, shift, passes):
    """open_pose_runtime('openvino', 'bf16') on the embedded ONNX: no export (the fp32 file with a bf16 hint),
    then the gate against onnxruntime fp32 on the same file, as torch bf16 is gated: a bf16 run that moves
    keypoints 5 px (10 SimCC bins) is refused with a ParityError. The CPU's bf16 check is bypassed: runtimes
    are fakes, so this runs on any CPU."""
    from dwpose_edge import pose_runtime
    from dwpose_edge.embedded import default_onnx
    from dwpose_edge.errors import ParityError

    opened = []

    def fake_open(runtime, files, precision="fp32", **kwargs):
        rt = _FakeRuntime(runtime, files, precision, shift if precision == "bf16" else 0, **kwargs)
        opened.append(rt)
        return rt

    def no_export(*args, **kwargs):
        raise AssertionError("openvino bf16 on an ONNX file needs no export")

    monkeypatch.setattr(pose_runtime, "open_runtime", fake_open)
    monkeypatch.setattr(pose_runtime, "cached_export", no_export)
    monkeypatch.setattr(pose_runtime.precisions, "check_cpu_feature", lambda *a, **k: None)
    if not passes:
        with pytest.raises(ParityError, match=r"openvino/bf16 disagrees .* within 2 px \(needs >= 95.0%\)"):
            pose_runtime.open_pose_runtime("dwpose-t", None, "openvino", "bf16", threads=1)
        return
    rt = pose_runtime.open_pose_runtime("dwpose-t", None, "openvino", "bf16", threads=1)
    source = default_onnx("dwpose-t")
    assert [(o.name, o.precision) for o in opened] == [("openvino", "bf16"), ("onnxruntime", "fp32")]
    assert opened[0].files["xml"] == source and opened[1].files["model"] == source
    assert rt is opened[0] and rt.validation["within_2px"] == 1.0


def test_openvino_bf16_is_refused_on_a_cpu_without_bf16():
    from dwpose_edge.errors import RuntimeUnavailableError
    from dwpose_edge.pose_runtime import open_pose_runtime

    if has_bf16():
        pytest.skip("this CPU has bf16")
    with pytest.raises(RuntimeUnavailableError, match=r"avx512_bf16.*amx_bf16"):
        open_pose_runtime("dwpose-t", None, "openvino", "bf16")


def test_cli_runtime_auto_without_precision_weighs_every_precision(monkeypatch):
    from dwpose_edge import cli

    seen = {}

    class Recorder:
        decision = None

        def __init__(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.setattr(cli, "Estimator", Recorder)
    parser = cli.build_parser()
    for argv, precision in ((["--runtime", "auto"], "auto"), ([], "fp32"), (["--runtime", "openvino"], "fp32"),
                            (["--runtime", "auto", "--precision", "fp32"], "fp32")):
        args = parser.parse_args(["predict", "x.jpg", *argv])
        cli._estimator(args)
        assert seen["precision"] == precision, argv
