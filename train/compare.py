"""Side-by-side AP table of several `dwpose-edge eval --out` files (teacher, control, TPD student, ...).

    python -m dwpose_edge.train.compare runs/eval_teacher_s.json runs/eval_control_t.json \
        runs/eval_tpd_t_stage2.json --baseline control_t

One row per run (named after its file, without `eval_`), one column per part's AP, then whole-body
AP .5 and AR; with `--baseline` a last column gives each run's whole-body AP minus the baseline's,
the question the control exists to answer: does distillation help?
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from dwpose_edge.errors import InputError
from dwpose_edge.evaluation.metric import EVAL_PARTS as PARTS


def run_name(path: str | os.PathLike) -> str:
    stem = Path(path).stem
    return stem[len("eval_"):] if stem.startswith("eval_") else stem


def comparison_table(results: dict[str, dict[str, dict[str, float]]], baseline: str | None = None) -> str:
    """Markdown table of per-part AP for each named result (as `evaluate_estimator` returns them)."""
    if baseline is not None and baseline not in results:
        raise InputError(f"baseline {baseline!r} is not one of the runs {sorted(results)}")
    for name, res in results.items():
        missing = [p for p in PARTS if p not in res]
        if missing:
            raise InputError(f"{name}: no {missing} in its results; is it a `dwpose-edge eval --out` file?")
    head = ["run", *PARTS, "whole-body AP .5", "whole-body AR"]
    if baseline is not None:
        head.append(f"whole-body AP vs {baseline}")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in results.items():
        row = [name, *(f"{res[p]['AP']:.3f}" for p in PARTS),
               f"{res['wholebody']['AP .5']:.3f}", f"{res['wholebody']['AR']:.3f}"]
        if baseline is not None:
            row.append("-" if name == baseline else _delta(res["wholebody"]["AP"], results[baseline]["wholebody"]["AP"]))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _delta(ap: float, base: float) -> str:
    delta = ap - base
    return f"{delta:+.3f} ({delta / base:+.0%})" if base > 0 else f"{delta:+.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", help="json files written by `dwpose-edge eval --out`")
    p.add_argument("--baseline", default=None, help="run name to compare against (e.g. control_t)")
    args = p.parse_args(argv)
    results = {run_name(f): json.loads(Path(f).read_text()) for f in args.results}
    print(comparison_table(results, args.baseline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
