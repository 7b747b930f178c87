"""The ARM lane: the documented device flow run for real on emulated arm64 cores.

Exports of the package default (the embedded dwpose-t, torch fp32 reference) are made on x86 by this venv for every
runtime x precision, copied into an arm64 Debian rootfs holding `pip install .[openvino,ncnn,litert]` (no torch;
tests/arm/arm_rootfs.py), and re-checked there by `dwpose-edge check` under qemu-user on two cores: cortex-a72
(ARMv8.0, no fp16 arithmetic) and neoverse-n1 (ARMv8.2 with fp16 arithmetic and dot product, as Cortex-A76/A78).
Every artifact must pass its gate on each core: float artifacts against the x86 torch fp32 reference (fp32 >= 99.5%
of keypoints within 1 crop px, fp16 >= 99%), int8 within 2 points of x86's agreement with the reference (>= its
x86 fraction within 2 px, less 2%). Then the Estimator opens a folder on each core end to end
(`dwpose-edge predict --model-dir`), device check included, and must give the x86 keypoints.

Run by `make test-arm` (`.ci/run` calls it); needs root. Timings under emulation mean nothing: numbers only.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arm_rootfs import ARM_ROOT, CPUS, ROOTFS, LaneUnavailable, ensure_lane, in_rootfs, log  # noqa: E402

from int8_assets import _locked, _sources_hash  # noqa: E402

pytestmark = pytest.mark.arm

REPO = Path(__file__).resolve().parents[2]
MODEL = "dwpose-t"
WEIGHTS = REPO / "dwpose_edge" / "data" / "dwpose-t_synth_fp16.pth"  # the package default's checkpoint
TARGETS = ("onnx", "openvino", "ncnn", "litert")
RUNTIMES = ("onnxruntime", "openvino", "ncnn", "litert")
PRECISIONS = ("fp32", "fp16", "int8")
# what the exports depend on: rebuilt exactly when one of these changes
SOURCES = ("export", "runtimes", "dwpose_edge/preprocess.py", "dwpose_edge/check_set.py", "dwpose_edge/models",
           "dwpose_edge/evaluation", "dwpose_edge/data/dwpose-t_synth_fp16.pth")
PHOTO = REPO / "dwpose_edge" / "data" / "astronaut.jpg"
# artifacts the device check refuses on a core, with what it says: a found runtime bug, not drift (docs/arm.md)
REFUSED = {("cortex-a72", "openvino", "int8"): "OpenVINO returned outputs of shapes (0, 133, 384)"}
PREDICT = ("onnxruntime", "fp16")  # the artifact the end-to-end run opens through the Estimator on each core


@pytest.fixture(scope="session")
def lane() -> str:
    try:
        return ensure_lane()
    except LaneUnavailable as exc:
        if os.environ.get("CI") or os.environ.get("DWPOSE_EDGE_ARM_REQUIRED"):
            pytest.fail(f"the ARM lane cannot run here: {exc}")
        pytest.skip(f"the ARM lane cannot run here: {exc}")


def _sources_key() -> str:
    files = [p for p in SOURCES if (REPO / p).exists()]
    h = _sources_hash([p for p in files if not p.endswith(".pth")], {"targets": TARGETS, "precisions": PRECISIONS})
    return f"{h}-{__import__('hashlib').sha256(WEIGHTS.read_bytes()).hexdigest()[:8]}"


@pytest.fixture(scope="session")
def exports(lane) -> Path:
    """The x86 export folder (cached under the lane's root, keyed by the exporting code), copied into the rootfs."""
    from dwpose_edge.export.pipeline import export_model

    key = _sources_key()
    folder = ARM_ROOT / "exports" / key
    with _locked(ARM_ROOT / "exports" / f"{key}.lock"):
        if not (folder / "manifest.json").is_file():
            log(f"exporting {MODEL} to {', '.join(TARGETS)} x {', '.join(PRECISIONS)} on x86 (once per exporter code)")
            staging = folder.with_name(folder.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            # allow_accuracy_loss: ncnn int8 of this flat-logit model misses the held-out gate on x86 already
            # (93.2% within 2 px with 16 float layers); the lane checks that each int8 artifact computes on the
            # device as where it was made, which holds whether or not it passed that gate
            export_model(MODEL, str(WEIGHTS), staging, targets=TARGETS, precisions=PRECISIONS, threads=1,
                         log=lambda m: log(f"  {m}"), allow_accuracy_loss=True)
            os.rename(staging, folder)
        for old in (ARM_ROOT / "exports").iterdir():  # exports of older code
            if old.is_dir() and old.name != key and not old.name.endswith(".partial"):
                shutil.rmtree(old, ignore_errors=True)
    inside = ROOTFS / "exports" / key
    if not (inside / "manifest.json").is_file():
        shutil.rmtree(ROOTFS / "exports", ignore_errors=True)
        shutil.copytree(folder, inside)
    return folder


def _check_on(cpu: str, key: str) -> dict:
    """`dwpose-edge check` of every runtime on `cpu`, one process per runtime (a crash names its runtime)."""
    rows = {}
    for runtime in RUNTIMES:
        out = f"/tmp/check-{cpu}-{runtime}.json"
        (ROOTFS / out.lstrip("/")).unlink(missing_ok=True)
        proc = in_rootfs(["/opt/venv/bin/python", "-m", "dwpose_edge.cli", "check", "--model-dir", f"/exports/{key}",
                          "--runtime", runtime, "--threads", "1", "--no-cache", "--json", out], cpu,
                         f"check {runtime}", timeout=2400)
        log(f"{cpu} {runtime}: rc {proc.returncode}\n{proc.stdout.strip()}")
        path = ROOTFS / out.lstrip("/")
        if path.is_file():
            for row in json.loads(path.read_text()):
                rows[row["runtime"], row["precision"]] = row
        else:
            for precision in PRECISIONS:
                rows[runtime, precision] = {"status": "crashed", "error": f"rc {proc.returncode}: "
                                            f"{proc.stderr.strip()[-1500:]}", "check": None}
    return rows


@pytest.fixture(scope="session")
def device_checks(lane, exports) -> dict:
    """{cpu: {(runtime, precision): row of `dwpose-edge check --json`}}, the two cores run side by side."""
    with ThreadPoolExecutor(len(CPUS)) as pool:
        futures = {cpu: pool.submit(_check_on, cpu, exports.name) for cpu in CPUS}
        results = {cpu: f.result() for cpu, f in futures.items()}
    (ARM_ROOT / "last-lane.json").write_text(json.dumps(
        {cpu: {f"{r}/{p}": row for (r, p), row in rows.items()} for cpu, rows in results.items()}, indent=1))
    return results


def test_the_emulated_cores_report_their_features(lane):
    code = "from dwpose_edge.runtimes.cpu_features import cpu_signature as s; import json; print(json.dumps(s()))"
    got = {cpu: json.loads(in_rootfs(["/opt/venv/bin/python", "-c", code], cpu, "cpu").stdout) for cpu in CPUS}
    assert got["cortex-a72"]["machine"] == "aarch64" and "asimdhp" not in got["cortex-a72"]["features"]
    assert {"asimdhp", "asimddp"} <= set(got["neoverse-n1"]["features"])
    assert got["neoverse-n1"]["model"] == "arm implementer 0x41 part 0xd0c"  # the lane's /proc/cpuinfo


def test_the_rootfs_runs_without_torch(lane):
    proc = in_rootfs(["/opt/venv/bin/python", "-c", "import importlib.util as u; print(u.find_spec('torch'))"],
                     "cortex-a72", "torch")
    assert proc.stdout.strip() == "None"


@pytest.mark.parametrize("cpu", sorted(CPUS))
@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_artifact_passes_its_gate_on_the_core(device_checks, cpu, runtime, precision):
    row = device_checks[cpu][runtime, precision]
    if (cpu, runtime, precision) in REFUSED:  # refused with the reason, never a silent wrong result
        assert row["status"] == "error" and REFUSED[cpu, runtime, precision] in row["error"], row
        return
    assert row["status"] == "pass", f"{runtime}/{precision} on {cpu}: {row.get('error') or row['check']}"
    check = row["check"]
    assert check["cpu"]["machine"] == "aarch64"
    if precision == "int8":  # as close to the reference as on x86, within the device check's tolerance
        there = check["needed"] + 0.02
        assert check["vs_reference"]["within_2px"] >= there - 0.02
    else:
        assert check["vs_reference"]["within_1px"] >= {"fp32": 0.995, "fp16": 0.99}[precision]


@pytest.mark.parametrize("cpu", sorted(CPUS))
def test_the_estimator_on_the_core_gives_the_x86_keypoints(lane, exports, cpu):
    """`dwpose-edge predict --model-dir` on the device (device check on open included) against the same on x86."""
    runtime, precision = PREDICT
    shutil.copyfile(PHOTO, ROOTFS / "tmp" / PHOTO.name)
    args = ["predict", "--model-dir", "EXPORT", "--runtime", runtime, "--precision", precision, "--threads", "1",
            "--detector", "none", "--out", "OUT"]
    x86_out = ARM_ROOT / f"predict-x86-{cpu}.json"
    env = {**os.environ, "DWPOSE_EDGE_CACHE": str(ARM_ROOT / "x86-cache")}
    x86 = subprocess.run([sys.executable, "-m", "dwpose_edge.cli", *[{"EXPORT": str(exports), "OUT": str(x86_out)}
                          .get(a, a) for a in args], str(PHOTO)], capture_output=True, text=True, env=env)
    assert x86.returncode == 0, x86.stderr
    arm = in_rootfs(["/opt/venv/bin/python", "-m", "dwpose_edge.cli",
                     *[{"EXPORT": f"/exports/{exports.name}", "OUT": "/tmp/predict.json"}.get(a, a) for a in args],
                     f"/tmp/{PHOTO.name}"], cpu, "predict", timeout=1800)
    assert arm.returncode == 0, arm.stderr[-3000:]
    ours, theirs = (_keypoints(json.loads(p.read_text())) for p in (ROOTFS / "tmp" / "predict.json", x86_out))
    err = np.linalg.norm(ours[..., :2] - theirs[..., :2], axis=-1)
    assert ours.shape == theirs.shape and (err <= 1.0).mean() >= 0.99, f"max {err.max():.1f} px"
    np.testing.assert_allclose(ours[..., 2], theirs[..., 2], atol=0.02)


def _keypoints(doc) -> np.ndarray:
    """(N, 133, 3) x, y, score of every person in a `predict --out` COCO-WholeBody JSON."""
    parts = ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")
    persons = [p for found in doc["files"].values() for p in found]
    return np.array([np.concatenate([np.reshape(p[k], (-1, 3)) for k in parts]) for p in persons], np.float64)
