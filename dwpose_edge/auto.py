"""runtime='auto' / precision='auto': measure which runtime x precision runs these weights fastest on this
machine within its accuracy gate, once, and remember the decision.

`choose` opens every candidate as the Estimator does (`open_pose_runtime`), so each passes the same
validation as when it is asked for by name (bf16 and int8 exports are gated against fp32 on first use,
torch bf16 when it opens; a candidate failing its gate is dropped with the figures). It then times the candidates on the bundled
photo crops, interleaved round by round so that a busy machine slows them all alike, and keeps the
fastest by median. The decision is cached as json under `<cache dir>/auto/`, keyed by the CPU's flags,
the installed package versions, the weights' sha256, the thread count and the candidates: a new CPU,
package or model measures again.

Default candidates are fp32 and bf16 (where the CPU computes bf16) on every installed runtime that runs
these weights without a long conversion: int8 (calibration, minutes) and fp16 (no native fp16 on the
x86 CPUs measured here) only when asked for by name; torch only for a checkpoint (`weights` a .pth or
registry name); ncnn by default only on non-x86 CPUs (on this AMD EPYC its fp32 took 25 ms per crop
against OpenVINO's 5.6).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import DwposeEdgeError, InputError
from .export.cache import export_source
from .export.validate import agreement, run_batched, validation_crops
from .hashing import sha256_file
from .manifest import TOOLS
from .pose_runtime import open_pose_runtime
from .runtimes import precisions as table
from .runtimes.base import RUNTIMES
from .runtimes.cpu_features import cpu_flags
from .runtimes.pose_onnx import is_pose_file
from .specs import RTMW_SPECS
from .version import __version__
from .weights import cache_dir

AUTO = "auto"
DEFAULT_PRECISIONS = ("fp32", "bf16")  # int8 and fp16: only when asked for by name (see the module doc)
ROUNDS = 7
CACHE_FORMAT = 1

Pair = tuple[str, str]


@dataclass(frozen=True)
class Trial:
    """One candidate: its speed (ms per crop, median over the rounds) and agreement with the fp32 reference
    on the bundled photo crops; `error` says why it was dropped (failed its gate, could not open)."""

    runtime: str
    precision: str
    ms_per_crop: float | None = None
    within_1px: float | None = None
    within_2px: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.ms_per_crop is not None

    def line(self) -> str:
        name = f"{self.runtime}/{self.precision}"
        if not self.ok:
            return f"{name}: dropped ({self.error})"
        return (f"{name}: {self.ms_per_crop:.2f} ms per crop, {self.within_2px:.1%} of keypoints within 2 px "
                f"of fp32 ({self.within_1px:.1%} within 1 px)")


@dataclass(frozen=True)
class Decision:
    """What `choose` picked, and every candidate's figures (the why)."""

    runtime: str
    precision: str
    trials: tuple[Trial, ...]
    batch: int
    threads: int | None
    key: str
    cached: bool = False
    measured_at: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def chosen(self) -> Trial:
        return next(t for t in self.trials if (t.runtime, t.precision) == (self.runtime, self.precision))

    def summary(self) -> str:
        """Human-readable: the choice, the figures behind it and where they come from."""
        ok = sorted((t for t in self.trials if t.ok), key=lambda t: t.ms_per_crop)
        head = (f"auto: {self.runtime}/{self.precision}, the fastest of {len(ok)} candidate(s) passing their "
                f"accuracy gate (batch {self.batch}, threads {self.threads or 'default'}; "
                + (f"cached decision measured {self.measured_at}" if self.cached else "measured now") + ")")
        others = [t for t in self.trials if not t.ok]
        return "\n".join([head] + ["  " + t.line() for t in ok + others])

    def as_dict(self) -> dict[str, Any]:
        return {"format": CACHE_FORMAT, "runtime": self.runtime, "precision": self.precision,
                "trials": [asdict(t) for t in self.trials], "batch": self.batch, "threads": self.threads,
                "key": self.key, "measured_at": self.measured_at, "versions": self.versions}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Decision":
        return cls(d["runtime"], d["precision"], tuple(Trial(**t) for t in d["trials"]), int(d["batch"]),
                   d["threads"], d["key"], True, d.get("measured_at", ""), d.get("versions", {}))


def parse_pairs(candidates: Iterable[Pair | str]) -> tuple[Pair, ...]:
    """('openvino', 'bf16') or 'openvino/bf16' items as pairs, each checked against the runtimes x precisions
    table (InputError naming what exists)."""
    pairs = []
    for c in candidates:
        pair = tuple(c.split("/")) if isinstance(c, str) else tuple(c)
        if len(pair) != 2:
            raise InputError(f"a candidate is 'runtime/precision' or (runtime, precision), got {c!r}")
        table.support(*pair, "cpu")
        pairs.append(pair)
    if not pairs:
        raise InputError("no candidates to choose from")
    return tuple(dict.fromkeys(pairs))


def _is_checkpoint(model: str, weights: Any) -> bool:
    """True when `weights` is a PyTorch checkpoint (or state dict) rather than an ONNX / SDK zip model; None
    is the embedded ONNX, and an RTMW model's default is its registry zip (as in the Estimator)."""
    if weights is None:
        return False
    return not is_pose_file(weights) and model not in RTMW_SPECS


def default_candidates(weights: Any = None, runtime: str = AUTO, precision: str = AUTO,
                       flags: Iterable[str] | None = None, model: str = "dwpose-t") -> tuple[Pair, ...]:
    """The CPU candidates `choose` measures for `weights` when runtime and/or precision is 'auto'.

    Installed runtimes only; pairs needing an instruction set this CPU (or `flags`) lacks are left out,
    as are the slow-to-make ones (see the module doc) unless `runtime`/`precision` names them.
    """
    runtimes = table.RUNTIMES if runtime == AUTO else (runtime,)
    wanted = DEFAULT_PRECISIONS if precision == AUTO else (precision,)
    checkpoint = _is_checkpoint(model, weights)
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
    out = []
    for r in runtimes:
        if importlib.util.find_spec(RUNTIMES[r][2]) is None:
            continue
        if runtime == AUTO and ((r == "torch" and not checkpoint) or (r in ("ncnn", "litert") and x86)):
            continue
        for p in wanted:
            entry = table.SUPPORT.get((r, p))
            if entry is None or (entry.devices is not None and "cpu" not in entry.devices):
                continue
            if table.cpu_feature_missing(r, p, flags) is None:
                out.append((r, p))
    if not out:
        raise InputError(f"no installed runtime runs {runtime}/{precision} on this CPU (installed: "
                         f"{[r for r in table.RUNTIMES if importlib.util.find_spec(RUNTIMES[r][2])]}); "
                         "install one, e.g. pip install 'dwpose-edge[openvino]'")
    return tuple(out)


def choose(model: str = "dwpose-t", weights: Any = None, candidates: Iterable[Pair | str] | None = None,
           threads: int | None = None, *, batch: int = 8, use_cache: bool = True,
           cache_folder: str | os.PathLike | None = None, log: Callable[[str], None] | None = None) -> Decision:
    """Measure `candidates` (None: `default_candidates(weights)`) for `weights` on this machine and return
    the fastest one that passes its accuracy gate; cached per machine, packages, weights and candidates
    in `cache_folder` (None: `<cache dir>/auto`; `use_cache=False` measures again and overwrites)."""
    pairs = parse_pairs(candidates) if candidates is not None else default_candidates(weights, model=model)
    key, versions = _key(model, weights, pairs, threads, batch)
    folder = Path(cache_folder) if cache_folder is not None else cache_dir() / "auto"
    path = folder / f"{model}_{key}.json" if key else None
    if use_cache and path is not None and path.is_file():
        try:
            return Decision.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):
            pass  # an unreadable or older cache file: measure again
    decision = _measure(model, weights, pairs, threads, batch, key or "", versions, log or (lambda m: None))
    if path is not None:
        _write(path, decision)
    return decision


def resolve(model: str, weights: Any, runtime: str, precision: str, *, threads: int | None = None,
            device: str | None = None, model_dir: Any = None, log: Callable[[str], None] | None = None) -> Decision:
    """The Estimator's 'auto': `runtime` and/or `precision` is 'auto'; the other, when named, restricts the
    candidates (runtime='openvino', precision='auto' chooses among OpenVINO's precisions)."""
    if model_dir is not None:
        raise InputError("runtime/precision 'auto' measures exports of `weights`, not a model_dir folder: "
                         "name the runtime and precision of the folder's artifact, or pass weights instead")
    if device is not None and str(device).split(":")[0].lower() != "cpu":
        raise InputError(f"runtime/precision 'auto' chooses among CPU runtimes; for device={device!r} name the "
                         "runtime and precision")
    for name, value, known in (("runtime", runtime, table.RUNTIMES), ("precision", precision, table.PRECISIONS)):
        if value != AUTO and value not in known:
            raise InputError(f"unknown {name} {value!r}; choose one of {list(known) + [AUTO]}")
    return choose(model, weights, default_candidates(weights, runtime, precision, model=model), threads, log=log)


def _measure(model: str, weights: Any, pairs: Sequence[Pair], threads: int | None, batch: int, key: str,
             versions: dict[str, str], log: Callable[[str], None]) -> Decision:
    reference_runtime = "torch" if _is_checkpoint(model, weights) else "onnxruntime"
    opened: dict[Pair, Any] = {}
    failed: dict[Pair, str] = {}
    for pair in dict.fromkeys([(reference_runtime, "fp32"), *pairs]):
        try:
            t0 = time.perf_counter()
            opened[pair] = open_pose_runtime(model, weights, pair[0], pair[1], threads=threads)
            log(f"auto: opened {pair[0]}/{pair[1]} in {time.perf_counter() - t0:.1f} s")
        except DwposeEdgeError as exc:  # failed its gate (ParityError), missing package, export error...
            failed[pair] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            log(f"auto: {pair[0]}/{pair[1]} dropped: {failed[pair]}")
    reference = opened.get((reference_runtime, "fp32"))
    if reference is None:
        raise InputError(f"auto: the fp32 reference ({reference_runtime}) cannot run these weights: "
                         f"{failed[(reference_runtime, 'fp32')]}")
    crops = validation_crops(reference.input_size)
    ref = run_batched(reference.infer, crops)
    x = np.ascontiguousarray(crops[:batch])
    timed = [p for p in pairs if p in opened]
    times: dict[Pair, list[float]] = {p: [] for p in timed}
    for p in timed:
        opened[p].infer(x)  # warm-up: first-call allocations and kernel selection
    for _ in range(ROUNDS):
        for p in timed:
            t0 = time.perf_counter()
            opened[p].infer(x)
            times[p].append((time.perf_counter() - t0) * 1000 / len(x))
    trials = []
    for p in pairs:
        if p not in opened:
            trials.append(Trial(*p, error=failed[p]))
            continue
        a = agreement(ref, run_batched(opened[p].infer, crops))
        trials.append(Trial(*p, ms_per_crop=round(float(np.median(times[p])), 4), within_1px=round(a.within_1px, 4),
                            within_2px=round(a.within_2px, 4)))
    ok = [t for t in trials if t.ok]
    if not ok:
        raise InputError("auto: no candidate runs these weights here:\n  " + "\n  ".join(t.line() for t in trials))
    best = min(ok, key=lambda t: t.ms_per_crop)
    return Decision(best.runtime, best.precision, tuple(trials), len(x), threads, key,
                    measured_at=time.strftime("%Y-%m-%d %H:%M:%S"), versions=versions)


def _key(model: str, weights: Any, pairs: Sequence[Pair], threads: int | None,
         batch: int) -> tuple[str | None, dict[str, str]]:
    """The cache key (None: weights without a file, such as a state dict, are not cached) and the versions in it."""
    versions = {"dwpose-edge": __version__}
    for name in TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    source = export_source(model, model if weights is None and model in RTMW_SPECS else weights)
    if isinstance(source, str) and source == "random":
        weights_id = "random"
    elif isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        weights_id = sha256_file(source)
    else:
        return None, versions
    doc = {"model": model, "weights": weights_id, "pairs": sorted(map(list, pairs)), "threads": threads,
           "batch": batch, "cpu": sorted(cpu_flags()), "machine": platform.machine(), "versions": versions}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16], versions


def _write(path: Path, decision: Decision) -> None:
    """Write the decision atomically; a cache folder that cannot be written only costs a re-measure."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(decision.as_dict(), indent=2))
        os.replace(tmp, path)
    except OSError:
        pass
