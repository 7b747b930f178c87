"""The one table of runtimes x precisions: which pairs exist, on which devices, from which exported file.

The CLI choices, `export_model`, the INT8 export, the benchmark and `open_runtime` all read it, so a new
runtime or precision is added here once.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dwpose_edge.errors import InputError, RuntimeUnavailableError
from dwpose_edge.runtimes.cpu_features import require_bf16

RUNTIMES = ("torch", "onnxruntime", "openvino", "ncnn", "litert")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
DEFAULT_EXPORT_PRECISIONS = ("fp32", "fp16")  # int8 needs calibration data, bf16 a CPU with bf16: on request


@dataclass(frozen=True)
class Support:
    """One runtime x precision pair.

    `devices`: device kinds it runs on (None: whatever the runtime accepts). `file_precision`: the
    exported file it runs (None: no file, torch runs the checkpoint); bf16 runs the fp32 file with a
    bf16 compute hint. `calibrated`: the export needs calibration data. `cpu_feature`: an instruction
    set the CPU must have (see runtimes/cpu_features.py).
    """

    devices: tuple[str, ...] | None = None
    file_precision: str | None = None
    calibrated: bool = False
    cpu_feature: str | None = None


SUPPORT: dict[tuple[str, str], Support] = {
    ("torch", "fp32"): Support(("cpu", "cuda")),
    ("torch", "fp16"): Support(("cuda",)),
    ("torch", "bf16"): Support(("cpu",), cpu_feature="bf16"),  # autocast; validated against fp32 by the Estimator
    ("onnxruntime", "fp32"): Support(file_precision="fp32"),
    ("onnxruntime", "fp16"): Support(file_precision="fp16"),
    ("onnxruntime", "int8"): Support(file_precision="int8", calibrated=True),
    ("openvino", "fp32"): Support(file_precision="fp32"),
    ("openvino", "fp16"): Support(file_precision="fp16"),
    ("openvino", "bf16"): Support(("cpu",), file_precision="fp32", cpu_feature="bf16"),
    ("openvino", "int8"): Support(file_precision="int8", calibrated=True),
    ("ncnn", "fp32"): Support(("cpu",), file_precision="fp32"),
    ("ncnn", "fp16"): Support(("cpu",), file_precision="fp16"),
    ("ncnn", "int8"): Support(("cpu",), file_precision="int8", calibrated=True),
    ("litert", "fp32"): Support(("cpu",), file_precision="fp32"),  # XNNPACK; fp16: fp16 weights, fp32 compute
    ("litert", "fp16"): Support(("cpu",), file_precision="fp16"),
    ("litert", "int8"): Support(("cpu",), file_precision="int8", calibrated=True),
}

# the runtimes that load exported files (every precision but torch's has one)
FILE_RUNTIMES = tuple(r for r in RUNTIMES if any(s.file_precision for (rt, _), s in SUPPORT.items() if rt == r))
# precisions `export_model` writes (some runtime has a file for them)
EXPORT_PRECISIONS = tuple(p for p in PRECISIONS if any(s.file_precision for (_, pr), s in SUPPORT.items() if pr == p))


def precisions_of(runtime: str) -> tuple[str, ...]:
    """The precisions `runtime` supports, in table order."""
    return tuple(p for p in PRECISIONS if (runtime, p) in SUPPORT)


def runtimes_of(precision: str, *, files_only: bool = False) -> tuple[str, ...]:
    """The runtimes supporting `precision` (`files_only`: only those running an exported file)."""
    return tuple(r for r in RUNTIMES if (r, precision) in SUPPORT
                 and (SUPPORT[r, precision].file_precision or not files_only))


def device_kind(device: str | None) -> str:
    """'cpu', 'cuda', 'gpu', ... from a device name as the runtimes take it (None = cpu)."""
    return (device or "cpu").split(":")[0].split(".")[0].lower()


def support(runtime: str, precision: str, device: str | None = None) -> Support:
    """The table entry of `runtime`/`precision` on `device` (None: any), or InputError naming what does exist."""
    if runtime not in RUNTIMES:
        raise InputError(f"unknown runtime {runtime!r}; choose one of {list(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
    entry = SUPPORT.get((runtime, precision))
    if entry is None:
        raise InputError(f"the {runtime} runtime has no {precision} (it supports {list(precisions_of(runtime))}); "
                         f"{precision} runs on {list(runtimes_of(precision))}")
    if device is not None and entry.devices is not None and device_kind(device) not in entry.devices:
        if entry.devices == ("cpu",):
            raise InputError(f"the {runtime} runtime runs on the CPU only for {precision} here; got device={device!r}, "
                             "use device=None or 'cpu'")
        where = " and ".join(d.upper() for d in entry.devices)
        raise InputError(f"{runtime} {precision} runs on {where} only; got device={device!r}, "
                         f"use one of {list(entry.devices)}")
    return entry


def check_cpu_feature(runtime: str, precision: str, flags: Iterable[str] | None = None) -> None:
    """RuntimeUnavailableError when the pair needs an instruction set this CPU (or `flags`) lacks."""
    entry = SUPPORT.get((runtime, precision))
    if entry is not None and entry.cpu_feature == "bf16":
        require_bf16(f"{runtime} precision='{precision}'", flags)


def cpu_feature_missing(runtime: str, precision: str, flags: Iterable[str] | None = None) -> str | None:
    """The instruction-set message when the pair cannot run on this CPU, else None (for skip reasons)."""
    try:
        check_cpu_feature(runtime, precision, flags)
    except RuntimeUnavailableError as exc:
        return str(exc)
    return None
