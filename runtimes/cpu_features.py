"""Which reduced-precision instruction sets this CPU has (bf16: AVX512-BF16 or AMX-BF16)."""
from __future__ import annotations

import functools
import platform
from collections.abc import Iterable

from dwpose_edge.errors import RuntimeUnavailableError

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # Linux /proc/cpuinfo names of the instruction sets computing bf16


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where that file is missing."""
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
