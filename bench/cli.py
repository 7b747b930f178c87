"""`dwpose-edge bench`: accuracy vs latency of runtimes x precisions (or a pytest-benchmark JSON as a report)."""
from __future__ import annotations

import argparse
import time

from dwpose_edge.bench.report import from_pytest_benchmark, write_report
from dwpose_edge.bench.runner import PRECISIONS, QUICK, RUNTIMES, run_bench
from dwpose_edge.errors import DwposeEdgeError
from dwpose_edge.evaluation.backend import warn_without_evaluator


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    try:
        values = [int(t) for t in _csv(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"want comma-separated integers, got {text!r}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"want integers >= 1, got {text!r}")
    return values


def cmd_bench(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    if args.from_pytest_benchmark:
        try:
            report = from_pytest_benchmark(args.from_pytest_benchmark)
        except (OSError, ValueError, KeyError) as exc:
            raise DwposeEdgeError(f"cannot read {args.from_pytest_benchmark} as pytest-benchmark JSON: {exc}") from exc
        write_report(report, args.out)
    else:
        warn_without_evaluator("the report has latency and pixel-agreement columns but no AP")
        if (args.data is None) != (args.images is None):
            raise DwposeEdgeError("--data and --images go together (COCO-WholeBody json and its image folder)")
        options = dict(QUICK) if args.quick else {}
        if args.precisions and "skip_precisions" in options:  # an explicit --precisions wins over --quick's skips
            options["skip_precisions"] = {k: v for k, v in options["skip_precisions"].items()
                                          if k not in _csv(args.precisions)}
        if args.repeats is not None:
            options["repeats"] = args.repeats
        report = run_bench(models=_csv(args.models), runtimes=_csv(args.runtimes) if args.runtimes else RUNTIMES,
                           precisions=_csv(args.precisions) if args.precisions else PRECISIONS,
                           data_ann=args.data, data_images=args.images, batches=args.batch, threads=args.threads,
                           out_dir=args.out, weights=args.weights, progress=not args.no_progress,
                           peers=not args.no_peers, **options)
        for model, goal in (report.get("goal") or {}).items():
            if "ratio" in goal:
                print(f"{model}: best identical-keypoint runtime {goal['best']} is {goal['ratio']:.2f}x rtmlib "
                      f"end-to-end (goal >= 1.5x: {goal['status']})")
        for model, goal in (report.get("goal_accurate") or {}).items():
            if "ratio" in goal:
                print(f"{model}: best accurate runtime {goal['best']} ({goal['within_2px']:.1%} within 2 px) is "
                      f"{goal['ratio']:.2f}x rtmlib end-to-end (goal >= 2.0x: {goal['status']})")
    for path in report.get("files", {}).values():
        print(f"wrote {path}")
    print(f"bench took {time.perf_counter() - t0:.0f} s")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `bench` on the main CLI's subparsers."""
    p = subparsers.add_parser("bench", help="accuracy vs latency of every runtime x precision; report.md/json/csv/png")
    p.add_argument("--models", default="dwpose-t", help="comma list of model names")
    p.add_argument("--runtimes", default=None, help="comma list (default: torch,onnxruntime,openvino,ncnn)")
    p.add_argument("--precisions", default=None, help="comma list (default: fp32,fp16,int8)")
    p.add_argument("--data", default=None, help="COCO-WholeBody json (default: a small generated set)")
    p.add_argument("--images", default=None, help="image folder of --data")
    p.add_argument("--batch", type=_ints, default=[1, 8], help="batch sizes for the latency columns, e.g. 1,8")
    p.add_argument("--threads", type=int, default=None, help="threads per runtime (default: all usable cores)")
    p.add_argument("--out", default="out/bench", help="folder for report.md, report.json, report.csv and the plot")
    p.add_argument("--weights", default=None,
                   help="mmpose .pth, registry name, .onnx, or 'random' (default: embedded, else random)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per measurement (default 20, quick 5)")
    p.add_argument("--quick", action="store_true", help="few repeats and persons: ~2-3 minutes on 2 cores")
    p.add_argument("--no-peers", action="store_true", help="skip the rtmlib / plain onnxruntime comparison")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--from-pytest-benchmark", default=None, metavar="FILE",
                   help="write the report from `pytest bench/benchmarks/ --benchmark-json FILE` instead of running")
    p.set_defaults(func=cmd_bench)
    return p
