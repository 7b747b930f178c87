"""`dwpose-edge` command line: one subcommand per public function."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields
from pathlib import Path

from .bench.cli import add_parser as add_bench_parser
from .demo import run_demo
from .device_check import check_folder, format_rows
from .detectors import detector_names
from .errors import DwposeEdgeError, InputError
from .estimator import Estimator
from .evaluation.backend import load_backend, require_evaluator, warn_without_evaluator
from .evaluation.metric import evaluate_estimator, format_results
from .export.cache import export_cache_entries, prune_export_cache
from .pose_json import write_pose_canvases
from .predict import FORMATS, run_predict
from .presets import PRESETS
from .runtimes import precisions as table
from .runtimes.base import require
from .specs import MODEL_SPECS, RTMW_SPECS
from .track_cli import add_track_args, run_tracking, wants_tracking
from .train.synth_cli import add_parser as add_synth_parser
from .weights import cache_dir


def _estimator(args: argparse.Namespace, **extra):
    """The Estimator the model options of a subcommand describe (see `_add_model_args`); with --preset, the
    preset's model, weights, detector and runtime unless --runtime/--detector are given."""
    # --runtime auto without --precision weighs fp32 and, on a CPU with bf16, OpenVINO bf16 (no export needed)
    precision = args.precision or ("auto" if args.runtime == "auto" else "fp32")
    options = dict(device=args.device, precision=precision, flip_test=args.flip_test, threads=args.threads,
                   calib=args.calib, calib_images=args.calib_images, **extra)
    if args.preset:
        given = [flag for flag, value in (("--model", args.model), ("--weights", args.weights),
                                          ("--model-dir", args.model_dir)) if value is not None]
        if given:
            raise InputError(f"--preset {args.preset} chooses the model and its weights: drop {', '.join(given)}")
        if args.runtime is not None:
            options["runtime"] = args.runtime
        est = Estimator.from_preset(args.preset, **{k: v for k, v in options.items() if v is not None})
    else:
        options["detector"] = options.get("detector") or "none"
        est = Estimator(model=args.model or "dwpose-t", weights=args.weights, runtime=args.runtime or "onnxruntime",
                        model_dir=args.model_dir, **options)
    if est.decision is not None:  # runtime/precision auto: say what was chosen and why
        print(est.decision.summary(), file=sys.stderr)
    return est


def cmd_predict(args: argparse.Namespace) -> int:
    est = _estimator(args, detector=args.detector)  # None: the preset's, else 'none'
    if wants_tracking(args):
        return run_tracking(args, est)
    summary = run_predict(est, args.inputs, out=args.out, draw_dir=args.draw, fmt=args.format)
    print(f"{len(summary['files'])} file(s), {summary['frames']} frame(s), {summary['persons']} person(s) found, "
          f"{summary['ms_per_frame']:.1f} ms per image/frame")
    if summary["persons"] == 0:
        print("no person found: try --detector none (whole image), hog or yolox, or pass boxes from Python")
    return 0


def cmd_draw(args: argparse.Namespace) -> int:
    """The ControlNet canvas of a pose JSON (ComfyUI POSE_KEYPOINT, OpenPose, or predict's --out), one PNG per image."""
    size = None
    if args.canvas_size:
        try:
            size = tuple(int(v) for v in args.canvas_size.lower().split("x"))
        except ValueError:
            size = ()
        if len(size) != 2 or min(size) <= 0:
            raise InputError(f"--canvas-size must be HEIGHTxWIDTH in pixels, e.g. 768x512, got {args.canvas_size!r}")
    paths = write_pose_canvases(args.json, args.out, style=args.style, canvas_size=size)
    print(f"{len(paths)} canvas(es) written: {paths[0] if len(paths) == 1 else paths[0].parent}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The official DWPose-t on the bundled photos when it can be fetched; the embedded model on generated people."""
    run_demo(args.out, weights=args.weights, sha256=args.sha256, offline=args.offline, model=args.model)
    return 0


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def cmd_export(args: argparse.Namespace) -> int:
    if "int8" in _csv(args.precision):
        warn_without_evaluator("the int8 gate checks keypoint agreement only, not the AP drop")
    from .export.pipeline import export_model  # loads onnx (~0.45 s): `predict` and the rest start without it

    path = export_model(args.model, args.weights, args.out, targets=_csv(args.to), precisions=_csv(args.precision),
                        threads=args.threads, calib=args.calib, calib_images=args.calib_images,
                        allow_accuracy_loss=args.allow_accuracy_loss)
    print(f"validated exports and {path}")
    return 0


def _require_paths(paths: dict[str, str | None], hint: str = "") -> None:
    """A one-line error for the first given option whose path does not exist (an ...images option is a folder)."""
    for flag, path in paths.items():
        if path is not None and not os.path.exists(path):
            raise DwposeEdgeError(f"{flag} {path} does not exist; pass an existing "
                                  f"{'folder' if flag.endswith('images') else 'json file'}{hint}")


def cmd_train(args: argparse.Namespace) -> int:
    require("torch", "dwpose-edge[train]")  # training is the one command that needs torch whatever its options
    from .train.trainer import TrainConfig, load_config_file, train  # torch: imported only here

    options = load_config_file(args.config) if args.config else {}
    for f in fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            options[f.name] = value
    options["stage"] = args.stage
    for key in ("ann", "images"):
        if not options.get(key):
            raise DwposeEdgeError(f"train needs --{key} (or '{key}' in the --config file)")
    config = TrainConfig.from_dict(options)
    _require_paths({f"--{k.replace('_', '-')}": getattr(config, k) for k in ("ann", "images", "val_ann", "val_images")},
                   " (or fix it in --config)")
    if config.val_ann:  # periodic validation: find a missing evaluator now, not after the first epochs
        require_evaluator()
    final = train(config)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(f"final checkpoint: {final}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    backend = load_backend(args.evaluator)  # before any model loading or inference
    _require_paths({"--ann": args.ann, "--images": args.images, "--det-file": args.det_file})
    est = _estimator(args, detector="none")  # boxes from --det-file or the ground truth: no detector to fetch
    results = evaluate_estimator(est, args.ann, args.images, use_gt_boxes=args.det_file is None,
                                 det_file=args.det_file, max_images=args.max_images, evaluator=backend.name)
    print(format_results(results))
    print(f"evaluator: {backend.describe()}")
    if args.out:  # parts at the top level (train.compare reads them), plus which evaluator scored them
        Path(args.out).write_text(json.dumps({**results, "evaluator": backend.describe()}, indent=2))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Every artifact's gate re-run on this machine; exit 1 when one fails or cannot run here."""
    rows = check_folder(args.model_dir, runtimes=_csv(args.runtime) if args.runtime else None,
                        precisions=_csv(args.precision) if args.precision else None, threads=args.threads,
                        use_cache=not args.no_cache)
    print(format_rows(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"runtime": r.runtime, "precision": r.precision, "status": r.status, "error": r.error,
              "check": r.check.as_dict() if r.check else None} for r in rows], indent=1))
    return 0 if all(r.status == "pass" for r in rows) else 1


def cmd_cache(args: argparse.Namespace) -> int:
    if args.unused_days is not None and not args.unused_days >= 0:  # also refuses nan
        raise InputError(f"--unused-days must be >= 0, got {args.unused_days}")
    if args.prune or args.clear:
        removed = prune_export_cache(args.unused_days, everything=args.clear)
        print(f"removed {len(removed)} folder(s), {sum(e.bytes for e in removed) / 1e6:.1f} MB")
        return 0
    if args.unused_days is not None:
        raise InputError("--unused-days goes with --prune")
    entries = export_cache_entries()
    now = time.time()
    for e in entries:
        days = (now - e.mtime) / 86400
        what = f"{e.model} {','.join(e.artifacts)}" if e.model else ""
        print(f"{e.status:13s} {e.bytes / 1e6:8.1f} MB  used {days:5.1f} d ago  {e.path.name}  {what}")
    stale = [e for e in entries if e.stale]
    print(f"{len(entries)} export folder(s) in {cache_dir() / 'exports'}: {sum(e.bytes for e in entries) / 1e6:.1f} MB; "
          f"{len(stale)} stale ({sum(e.bytes for e in stale) / 1e6:.1f} MB: unfinished or another version's), "
          "removed by --prune")
    return 0


PRECISION_HELP = "; ".join(f"{r}: {'/'.join(table.precisions_of(r))}" for r in table.RUNTIMES)
MODEL_HELP = (f"model variant: {', '.join(MODEL_SPECS)}; from ONNX / SDK zips only: {', '.join(RTMW_SPECS)} "
              "(default: %(default)s)")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, choices=list(PRESETS),
                   help="for real photos: an official pose model and person detector, downloaded once and verified "
                        "(performance: DWPose-l 384x288 + YOLOX-L, no PyTorch needed; balanced: DWPose-m + "
                        "YOLOX-m HumanArt; lightweight: DWPose-t + YOLOX-tiny HumanArt); replaces --model, "
                        "--weights and the default --detector and --runtime")
    p.add_argument("--model", default=None, help=MODEL_HELP.replace("%(default)s", "dwpose-t"))
    p.add_argument("--weights", default=None, help="mmpose .pth path, .onnx file, OpenMMLab SDK .zip, or a registry "
                                                   "name of one (default: the embedded model)")
    p.add_argument("--runtime", default=None, choices=[*table.RUNTIMES, "auto"],
                   help="inference engine; auto: the fastest that passes its accuracy gate, measured once per "
                        "machine and cached (default: onnxruntime, or the --preset's)")
    p.add_argument("--precision", default=None, choices=[*table.PRECISIONS, "auto"],
                   help=f"numeric precision ({PRECISION_HELP}); int8 exports and calibrates on first use, bf16 needs "
                        "a CPU with AVX512-BF16 or AMX; auto: fp32 or bf16, whichever is fastest within its "
                        "accuracy gate (default: fp32; auto with --runtime auto)")
    p.add_argument("--model-dir", default=None, help="folder written by `dwpose-edge export`")
    p.add_argument("--device", default=None, help="cpu (default), cuda[:N], or an OpenVINO device name such as GPU")
    p.add_argument("--flip-test", action="store_true",
                   help="also run the mirrored crop and average, as mmpose's flip_test (about 2x the time)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of the runtime (default: all usable cores)")
    p.add_argument("--calib", default=None, help="int8: calibration data for the export on first use (COCO-WholeBody "
                                                 "json with --calib-images, or an image folder; default: embedded set)")
    p.add_argument("--calib-images", dest="calib_images", default=None, help="image folder of --calib")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dwpose-edge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="estimate whole-body keypoints on images or folders")
    p.add_argument("inputs", nargs="+", help="images, folders, videos")
    _add_model_args(p)
    p.add_argument("--detector", default=None,
                   help=f"{', '.join(detector_names())}, a YOLOX-style .onnx, or an mmdeploy SDK detector .zip "
                        "(none: the whole image is one person; default: none, or the --preset's)")
    p.add_argument("--format", default="coco", choices=list(FORMATS),
                   help="JSON layout of --out: coco (133 keypoints), openpose (ControlNet-style), comfyui "
                        "(ComfyUI's POSE_KEYPOINT entries) or openpose-json (OpenPose's own layout, raw scores) "
                        "(default: %(default)s)")
    p.add_argument("--out", default=None, help="write results as JSON here")
    p.add_argument("--draw", default=None, help="write drawings (PNG per image, MP4 per video) into this folder; "
                                                "with --format openpose also <name>_openpose.png per image, the "
                                                "ControlNet canvas (identical to the DWPose annotator's)")
    add_track_args(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="export to ONNX / OpenVINO / ncnn, validate each against torch, write manifest.json")
    p.add_argument("--model", default="dwpose-t", help=MODEL_HELP)
    p.add_argument("--weights", required=True,
                   help="mmpose .pth, registry name, 'random' (untrained), or an official .onnx file")
    p.add_argument("--to", default="onnx,openvino,ncnn", help="comma list of onnx, openvino, ncnn, litert")
    p.add_argument("--precision", default=",".join(table.DEFAULT_EXPORT_PRECISIONS),
                   help=f"comma list of {', '.join(table.EXPORT_PRECISIONS)} ({PRECISION_HELP}; default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for validation and calibration (default: all usable cores)")
    p.add_argument("--calib", default=None,
                   help="int8 calibration data: COCO-WholeBody json (with --calib-images), boxes json "
                        '{"img.jpg": [[x1,y1,x2,y2], ...]} (with --calib-images), or a folder of images')
    p.add_argument("--calib-images", dest="calib_images", default=None, help="image folder of --calib")
    p.add_argument("--allow-accuracy-loss", dest="allow_accuracy_loss", action="store_true",
                   help="write int8 artifacts that fail the accuracy gate (flagged in manifest.json)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("train", help="TPD training: stage1 (distil), stage2 (head self-KD) or plain (GT only)")
    p.add_argument("stage", choices=["stage1", "stage2", "plain"],
                   help="stage1: distil a teacher into the student; stage2: the student's head distils its own "
                        "features (backbone frozen); plain: ground truth only")
    p.add_argument("--config", default=None,
                   help="TOML/YAML/JSON file with TrainConfig fields; options given here override it")
    p.add_argument("--student", default=None, help="student variant, e.g. dwpose-t (default: dwpose-t)")
    p.add_argument("--teacher", default=None, help="stage1: the teacher's variant, e.g. dwpose-l")
    p.add_argument("--teacher-weights", dest="teacher_weights", default=None,
                   help="stage1: the teacher's checkpoint (.pth or registry name)")
    p.add_argument("--student-weights", dest="student_weights", default=None, help="stage2: the stage-1 checkpoint")
    p.add_argument("--init-weights", dest="init_weights", default=None,
                   help="stage1/plain: start the student from this checkpoint")
    p.add_argument("--ann", default=None, help="training COCO-WholeBody annotations json")
    p.add_argument("--images", default=None, help="image folder of --ann")
    p.add_argument("--val-ann", dest="val_ann", default=None,
                   help="validation annotations json: AP every --val-interval epochs (needs the train extra)")
    p.add_argument("--val-images", dest="val_images", default=None, help="image folder of --val-ann")
    p.add_argument("--out", "--work-dir", dest="out", default=None,
                   help="folder for checkpoints and logs (--work-dir as in mmpose; default: work_dirs/dwpose)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: 270 for stage1/plain, 60 for stage2)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=None,
                   help="images per step and process (default: 64)")
    p.add_argument("--lr", type=float, default=None, help="peak AdamW learning rate (default: 4e-3)")
    p.add_argument("--device", default=None, help="cpu (default) or cuda[:N]")
    p.add_argument("--amp", action="store_true", default=None,
                   help="mixed precision: float16 on CUDA, bfloat16 autocast on CPU")
    p.add_argument("--num-workers", dest="num_workers", type=int, default=None,
                   help="data loader processes (default: 2)")
    p.add_argument("--val-interval", dest="val_interval", type=int, default=None,
                   help="epochs between validations with --val-ann (default: 10; the last epoch always)")
    p.add_argument("--resume", default=None, help="continue from a checkpoint of this trainer, e.g. OUT/latest.pth")
    p.add_argument("--seed", type=int, default=None, help="seed of initialisation, shuffling and augmentation")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="COCO-WholeBody AP per part of any runtime on a COCO-WholeBody json")
    _add_model_args(p)
    p.add_argument("--ann", required=True, help="COCO-WholeBody annotations json (ground truth)")
    p.add_argument("--images", required=True, help="image folder of --ann")
    p.add_argument("--det-file", default=None, help="COCO person detections json (default: ground-truth boxes)")
    p.add_argument("--max-images", type=int, default=None,
                   help="score only the first N images (by id), against those images only")
    p.add_argument("--evaluator", default=None, choices=["xtcocotools", "xthotcoco"],
                   help="COCOeval implementation (default: xtcocotools when it imports, else xthotcoco; "
                        "same numbers)")
    p.add_argument("--out", default=None, help="write the AP table as JSON here")
    p.set_defaults(func=cmd_eval)

    add_synth_parser(sub)
    add_bench_parser(sub)

    p = sub.add_parser("check", help="re-run every artifact's accuracy gate of an export folder on this machine "
                                      "(the device's own arithmetic) and print a table; exit 1 if one fails")
    p.add_argument("--model-dir", dest="model_dir", required=True, help="folder written by `dwpose-edge export`")
    p.add_argument("--runtime", default=None, help="comma list of runtimes to check (default: all in the folder)")
    p.add_argument("--precision", default=None, help="comma list of precisions to check (default: all)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of the runtimes (default: all cores)")
    p.add_argument("--json", default=None, help="also write the results as JSON here")
    p.add_argument("--no-cache", dest="no_cache", action="store_true",
                   help="run the checks even where this machine has a recorded result")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("cache", help="list the export cache (models exported on first use); --prune / --clear it")
    p.add_argument("--prune", action="store_true", help="remove unfinished exports and those of other dwpose-edge "
                                                         "versions (never opened again)")
    p.add_argument("--unused-days", type=float, default=None, metavar="N",
                   help="with --prune: also remove exports not written or opened for N days")
    p.add_argument("--clear", action="store_true", help="remove every export (re-made on first use; downloaded "
                                                         "weights stay)")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("draw", help="draw the ControlNet OpenPose canvas of a pose JSON (ComfyUI POSE_KEYPOINT, "
                                     "OpenPose JSON, or predict --out results) at the JSON's canvas size")
    p.add_argument("json", help="pose JSON file")
    p.add_argument("--out", required=True, help="PNG path for a one-image JSON; a folder (one <name>.png per "
                                                "image) for several")
    p.add_argument("--style", default="annotator", choices=["annotator", "scaled"],
                   help="annotator: ControlNet's training canvas; scaled: sizes grow with the canvas "
                        "(default: %(default)s)")
    p.add_argument("--canvas-size", dest="canvas_size", default=None, metavar="HxW",
                   help="canvas for a JSON without canvas_height/canvas_width (OpenPose's own files)")
    p.set_defaults(func=cmd_draw)

    p = sub.add_parser("demo", help="draw the official DWPose-t on the bundled photos (fetched once, verified) "
                                     "and the embedded model on a generated validation image")
    p.add_argument("--model", default="dwpose-t", help="the embedded model drawn on generated people (default: "
                                                        "%(default)s)")
    p.add_argument("--out", default="out/demo", help="folder for the drawings (default: %(default)s)")
    p.add_argument("--weights", default="dwpose-t-hf",
                   help="registry name of the official weights drawn on the real photos (default: %(default)s)")
    p.add_argument("--sha256", default=None, help="expected sha256 of --weights instead of the registry's")
    p.add_argument("--offline", action="store_true",
                   help="do not try to fetch --weights: draw only the embedded model on generated people")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DwposeEdgeError as exc:
        print(f"dwpose-edge: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
