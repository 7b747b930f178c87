"""Re-run an export's gates on the machine that runs it, not only on the one that made it.

An export validated on x86 can compute differently on the device (ARMv8.2 cores switch ncnn and onnxruntime fp16
models to fp16 arithmetic; int8 kernels differ per instruction set). Every folder written by `dwpose-edge export`
carries a check set (`check_set.py`); `check_artifact` runs an opened artifact on its crops and applies the
export's gate again: float precisions against the reference's keypoints with the export thresholds
(`export.validate.THRESHOLDS`), int8 as close to the reference as where its held-out gate passed. The
result is recorded per artifact, CPU signature, backend version and package version in the cache
(`device_checks/`), so a device pays for it once; `Estimator(model_dir=...)` refuses an artifact that fails here
with a ParityError naming the CPU features and the figures.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .check_set import read_check_set
from .errors import DwposeEdgeError, InputError, ParityError
from .export.validate import THRESHOLDS, keypoint_locations, run_batched
from .manifest import Artifact, Manifest, read_manifest, verified_paths
from .runtimes.base import Runtime, open_runtime
from .runtimes.cpu_features import cpu_signature
from .version import __version__
from .weights import cache_dir

# the distribution whose kernels a runtime's numbers depend on (first installed one wins)
BACKENDS = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"), "openvino": ("openvino",),
            "ncnn": ("ncnn",), "litert": ("ai-edge-litert", "ai-edge-litert-nightly")}


INT8_TOLERANCE = 0.02  # how much less of the reference an int8 artifact may match here than where it was gated


@dataclass(frozen=True)
class PixelAgreement:
    """How far one set of keypoint locations lies from another, in crop pixels."""

    n_keypoints: int
    within_1px: float
    within_2px: float
    mean_px: float
    max_px: float

    @classmethod
    def of(cls, reference: np.ndarray, test: np.ndarray) -> "PixelAgreement":
        err = np.linalg.norm(reference - test, axis=-1)
        return cls(int(err.size), float((err <= 1.0).mean()), float((err <= 2.0).mean()), float(err.mean()),
                   float(err.max()))

    def within(self, radius: float) -> float:
        return {1.0: self.within_1px, 2.0: self.within_2px}[radius]


@dataclass(frozen=True)
class DeviceCheck:
    """One artifact's gate re-run on this machine."""

    runtime: str
    precision: str
    passed: bool
    gate: str  # what was compared, in words
    radius_px: float
    needed: float
    got: float
    vs_reference: PixelAgreement
    vs_export: PixelAgreement | None  # the same artifact on the machine that exported it
    cpu: dict[str, Any]
    backend: str
    n_crops: int
    seconds: float
    cached: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "DeviceCheck":
        doc = dict(doc)
        doc["vs_reference"] = PixelAgreement(**doc["vs_reference"])
        doc["vs_export"] = PixelAgreement(**doc["vs_export"]) if doc.get("vs_export") else None
        return cls(**doc)

    def describe(self) -> str:
        features = ", ".join(self.cpu.get("features") or []) or "none of note"
        return (f"{self.runtime}/{self.precision} on this CPU ({self.cpu.get('machine')}, {self.cpu.get('model')}; "
                f"features: {features}; {self.backend}): {self.got:.2%} of keypoints within {self.radius_px:g} crop px "
                f"{self.gate} (needs >= {self.needed:.1%}); vs the reference: {self.vs_reference.within_1px:.2%} "
                f"within 1 px, max {self.vs_reference.max_px:.1f} px, over {self.n_crops} crops")


def backend_version(runtime: str) -> str:
    for dist in BACKENDS.get(runtime, (runtime,)):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return f"{runtime} (version unknown)"


def check_set_entry(manifest: Manifest) -> dict[str, Any] | None:
    """The manifest's record of the folder's check set, or None for a folder exported before check sets existed."""
    entry = manifest.info.get("check_set")
    return entry if isinstance(entry, dict) and isinstance(entry.get("file"), str) else None


def check_artifact(folder: str | os.PathLike, manifest: Manifest, artifact: Artifact, runtime: Runtime, *,
                   use_cache: bool = True) -> DeviceCheck | None:
    """Run `runtime` (the opened `artifact`) on the folder's check set and apply the artifact's gate on this machine.

    Returns None for a folder without a check set (warned). The result is cached per artifact, check set, CPU
    signature, backend and package version unless `use_cache` is False."""
    entry = check_set_entry(manifest)
    if entry is None:
        warnings.warn(f"{folder} was exported without a device check set (by dwpose-edge "
                      f"{(manifest.info.get('versions') or {}).get('dwpose-edge', '< 0.9')}): its artifacts cannot be "
                      "re-checked on this machine; export it again with this version", stacklevel=3)
        return None
    cpu, backend = cpu_signature(), backend_version(artifact.runtime)
    device = str(getattr(runtime, "device", "") or "")
    key = hashlib.sha256(json.dumps([artifact.runtime, artifact.precision, sorted(artifact.sha256.items()),
                                     entry.get("sha256"), cpu, backend, device, __version__]).encode()).hexdigest()
    record = cache_dir() / "device_checks" / f"{key}.json"
    if use_cache:
        try:
            doc = json.loads(record.read_text())
            return DeviceCheck.from_dict({**doc, "cached": True})
        except (OSError, ValueError, TypeError, KeyError):
            pass
    check_set = read_check_set(Path(folder) / entry["file"], entry.get("sha256"), tuple(manifest.input_size))
    t0 = time.perf_counter()
    got = keypoint_locations(*run_batched(runtime.infer, check_set.batch()))
    seconds = time.perf_counter() - t0
    vs_reference = PixelAgreement.of(check_set.reference, got)
    exported = check_set.exported.get((artifact.runtime, artifact.precision))
    vs_export = PixelAgreement.of(exported, got) if exported is not None else None
    radius, needed = THRESHOLDS[artifact.precision]
    if artifact.precision == "int8" and exported is not None:
        # int8 was gated on held-out crops (the user's calibration images, not carried) against fp32; here it must be
        # as close to the reference on these crops as it was where that gate passed. Not "the same keypoints as
        # there": int8 kernels round differently per instruction set (x86 u8s8 vs ARM sdot), and on a model with
        # flat logits that flips as many keypoints between the two as it does against fp32 (measured: onnxruntime
        # int8 on ARM 93.1% within 2 px of x86's int8, yet 88.2% vs 88.4% within 2 px of the reference)
        there = PixelAgreement.of(check_set.reference, exported).within(radius)
        needed = max(0.0, there - INT8_TOLERANCE)
        gate, value = (f"of the reference (the machine that exported it: {there:.2%}, tolerance "
                       f"{INT8_TOLERANCE:.0%})"), vs_reference.within(radius)
    else:
        gate, value = f"of the reference ({manifest.info.get('reference', 'fp32')})", vs_reference.within(radius)
    result = DeviceCheck(artifact.runtime, artifact.precision, value >= needed, gate, radius, needed, value,
                         vs_reference, vs_export, cpu, backend, int(len(check_set.crops)), round(seconds, 3))
    if use_cache:
        _write(record, result.as_dict())
    return result


def ensure_device_check(folder: str | os.PathLike, manifest: Manifest, artifact: Artifact,
                        runtime: Runtime) -> DeviceCheck | None:
    """`check_artifact`, raising ParityError when the artifact fails its gate on this machine."""
    result = check_artifact(folder, manifest, artifact, runtime)
    if result is not None and not result.passed:
        raise ParityError(f"{folder}: {result.describe()}. This export passed its gate where it was made but computes "
                          "differently on this device; use another precision or runtime here (`dwpose-edge check "
                          f"--model-dir {folder}` lists which pass on this machine)")
    return result


def open_artifact(folder: str | os.PathLike, manifest: Manifest, artifact: Artifact, device: str | None = None,
                  threads: int | None = None) -> Runtime:
    """One artifact of an export folder on its runtime, its files first checked against the manifest's sha256."""
    return open_runtime(artifact.runtime, verified_paths(folder, artifact), precision=artifact.precision,
                        device=device, threads=threads, input_size=tuple(manifest.input_size))


@dataclass(frozen=True)
class FolderRow:
    """One artifact of a folder on this machine: its check, or why it could not run here."""

    runtime: str
    precision: str
    check: DeviceCheck | None
    error: str | None = None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        if self.check is None:
            return "no check set"
        return "pass" if self.check.passed else "FAIL"


def check_folder(folder: str | os.PathLike, runtimes: list[str] | None = None, precisions: list[str] | None = None,
                 threads: int | None = None, use_cache: bool = True) -> list[FolderRow]:
    """`check_artifact` for every artifact of an export folder (or those of `runtimes` / `precisions`); an artifact
    that cannot be opened here (runtime package missing, CPU lacking an instruction set, bad file) is a row with
    the error instead."""
    manifest = read_manifest(folder)
    rows = []
    for art in manifest.artifacts:
        if (runtimes and art.runtime not in runtimes) or (precisions and art.precision not in precisions):
            continue
        try:
            opened = open_artifact(folder, manifest, art, threads=threads)
            rows.append(FolderRow(art.runtime, art.precision,
                                  check_artifact(folder, manifest, art, opened, use_cache=use_cache)))
        except DwposeEdgeError as exc:
            rows.append(FolderRow(art.runtime, art.precision, None, f"{type(exc).__name__}: {exc}"))
    if not rows:
        have = ", ".join(f"{a.runtime}/{a.precision}" for a in manifest.artifacts)
        raise InputError(f"{folder} has no artifact matching runtime {runtimes or 'any'} and precision "
                         f"{precisions or 'any'} (it has {have})")
    return rows


def format_rows(rows: list[FolderRow]) -> str:
    """The table `dwpose-edge check` prints."""
    lines = [f"{'artifact':20s} {'status':7s} {'gate':>20s} {'1px ref':>8s} {'2px ref':>8s} {'max px':>7s} "
             f"{'1px export':>10s}  {'s':>5s}"]
    for r in rows:
        name = f"{r.runtime}/{r.precision}"
        c = r.check
        if c is None:
            lines.append(f"{name:20s} {r.status:7s} {r.error or 'exported without a check set: re-export'}")
            continue
        exp = f"{c.vs_export.within_1px:10.2%}" if c.vs_export else f"{'-':>10s}"
        gate = f"{c.got:.2%}>={c.needed:.1%}@{c.radius_px:g}px"
        lines.append(f"{name:20s} {r.status:7s} {gate:>20s} {c.vs_reference.within_1px:8.2%} "
                     f"{c.vs_reference.within_2px:8.2%} {c.vs_reference.max_px:7.1f} {exp}  "
                     f"{'cached' if c.cached else f'{c.seconds:5.1f}'}")
    cpu = next((r.check.cpu for r in rows if r.check is not None), cpu_signature())
    lines.append(f"CPU: {cpu['machine']}, {cpu['model']}; features: {', '.join(cpu['features']) or 'none of note'}")
    return "\n".join(lines)


def _write(path: Path, doc: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, path)
    except OSError:  # a read-only cache: the check simply runs again next time
        pass
