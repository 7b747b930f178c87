"""Which reduced-precision instruction sets this CPU has (bf16: AVX512-BF16 or AMX-BF16; on ARM fp16 arithmetic),
and the CPU signature a device check is recorded under."""
from __future__ import annotations

import ctypes
import functools
import platform
from collections.abc import Iterable

from dwpose_edge.errors import RuntimeUnavailableError

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # Linux /proc/cpuinfo names of the instruction sets computing bf16


# Linux arm64 hwcap bits (arch/arm64/include/uapi/asm/hwcap.h), named as /proc/cpuinfo's "Features" names them
_HWCAP = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop "
          "sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg").split()
_HWCAP2 = ("dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm svebf16 "
           "i8mm bf16 dgh rng bti mte").split()
_AT_HWCAP, _AT_HWCAP2 = 16, 26
# the features that change what an ARM runtime computes: fp16 arithmetic (ARMv8.2 'asimdhp'), int8 dot products,
# bf16 and SVE kernels; x86: the vector widths and reduced-precision units oneDNN / MLAS / ncnn pick kernels by
NUMERIC_FEATURES = frozenset({"fphp", "asimdhp", "asimddp", "asimdfhm", "sve", "sve2", "i8mm", "bf16", "svebf16",
                              "svei8mm", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
                              "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8", "amx_fp16"})


def _aarch64_hwcaps() -> frozenset[str] | None:
    """Features from the kernel's (or qemu-user's) auxiliary vector: right under emulation, where /proc/cpuinfo
    may be missing or the host's."""
    if platform.machine().lower() not in ("aarch64", "arm64") or platform.system() != "Linux":
        return None
    try:
        getauxval = ctypes.CDLL(None).getauxval
        getauxval.restype, getauxval.argtypes = ctypes.c_ulong, [ctypes.c_ulong]
        caps, caps2 = getauxval(_AT_HWCAP), getauxval(_AT_HWCAP2)
    except (OSError, AttributeError):
        return None
    return frozenset([n for i, n in enumerate(_HWCAP) if caps >> i & 1]
                     + [n for i, n in enumerate(_HWCAP2) if caps2 >> i & 1])


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags: on arm64 Linux from the auxiliary vector, else /proc/cpuinfo; empty where unknown."""
    hw = _aarch64_hwcaps()
    if hw:
        return hw
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):  # x86 / aarch64
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def _openvino_says_bf16() -> bool:
    """OpenVINO's own answer (used where /proc/cpuinfo is absent: macOS, Windows)."""
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # no openvino, or no CPU plugin: no evidence of bf16
        return False


def has_bf16(flags: Iterable[str] | None = None) -> bool:
    """True when the CPU computes bf16 natively. `flags`: a feature-flag set (None = this machine's)."""
    if flags is None:
        flags = cpu_flags()
        if not flags and platform.system() != "Linux":
            return _openvino_says_bf16()
    return any(f in set(flags) for f in BF16_FLAGS)


def require_bf16(what: str, flags: Iterable[str] | None = None) -> None:
    """Raise RuntimeUnavailableError naming the missing instruction set when the CPU has no bf16."""
    if not has_bf16(flags):
        raise RuntimeUnavailableError(
            f"{what} needs a CPU with bf16 instructions (AVX512-BF16 'avx512_bf16' or AMX 'amx_bf16'), and this "
            f"CPU has neither; use precision='fp32' (or 'int8' for speed) here")


def has_fp16_arithmetic(flags: Iterable[str] | None = None) -> bool:
    """True on ARM cores that compute in fp16 (ARMv8.2 FP16: 'asimdhp'), where ncnn and onnxruntime switch their fp16
    models to fp16 arithmetic instead of fp16 storage with fp32 compute."""
    return "asimdhp" in set(cpu_flags() if flags is None else flags)


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (x86 'model name'; ARM: implementer/part from /proc/cpuinfo where readable)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if platform.machine().lower() in ("aarch64", "arm64"):
        if "CPU part" in fields:  # x86 fields here would be the host's, read through an emulator's /proc
            return f"arm implementer {fields.get('CPU implementer', '?')} part {fields['CPU part']}"
        return "arm (model unknown)"
    return fields.get("model name") or platform.processor() or "unknown"


def cpu_signature() -> dict[str, object]:
    """What a device check's figures depend on: architecture, model and the numeric instruction sets."""
    return {"machine": platform.machine().lower(), "model": cpu_model(),
            "features": sorted(f for f in cpu_flags() if f in NUMERIC_FEATURES)}
