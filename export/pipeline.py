"""One call from a checkpoint (or an official ONNX file) to every runtime, each validated before the manifest is written."""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

from dwpose_edge.embedded import embedded_val_set
from dwpose_edge.errors import ExportError, InputError
from dwpose_edge.export import to_ncnn
from dwpose_edge.export.int8 import Int8Export, Int8Options
from dwpose_edge.export.onnx_fp16 import convert_onnx_fp16
from dwpose_edge.export.to_openvino import export_openvino
from dwpose_edge.export.validate import keypoint_locations, run_batched, validate, validation_crops_u8
from dwpose_edge.hashing import sha256_file
from dwpose_edge.check_set import CHECK_SET, write_check_set
from dwpose_edge.manifest import MANIFEST, Artifact, Manifest, write_manifest
from dwpose_edge.onnx_file import check_onnx_file
from dwpose_edge.preprocess import normalize
from dwpose_edge.runtimes import precisions as table
from dwpose_edge.runtimes.base import open_runtime, require
from dwpose_edge.runtimes.cpu_features import cpu_signature
from dwpose_edge.specs import MEAN_RGB, STD_RGB, get_spec

TARGETS = {"onnx": "onnxruntime", **{r: r for r in table.FILE_RUNTIMES}}
PRECISIONS = table.DEFAULT_EXPORT_PRECISIONS  # "int8" (calibration data) and "bf16" (a bf16 CPU) on request
ALL_PRECISIONS = table.EXPORT_PRECISIONS


def artifact_stem(model: str, input_size: tuple[int, int], precision: str) -> str:
    return f"{model}_{input_size[1]}x{input_size[0]}_{precision}"


def export_model(model: str, weights, out_dir: str | os.PathLike, targets: Sequence[str] = ("onnx", "openvino", "ncnn"),
                 precisions: Sequence[str] = PRECISIONS, threads: int | None = None,
                 log: Callable[[str], None] = print, *, calib=None, calib_images: str | os.PathLike | None = None,
                 allow_accuracy_loss: bool = False, int8_options=None) -> Path:
    """Export `model` with `weights` (mmpose .pth / registry name / state dict / 'random', or an .onnx file).

    Every artifact is run on the same validation crops as the reference (torch fp32, or onnxruntime
    fp32 on an ONNX source) and must pass the agreement thresholds; only then is manifest.json written.

    Precision 'int8' is calibrated on `calib` = a COCO-WholeBody json (with `calib_images`, its image
    folder), a boxes json (with `calib_images`), a folder of images, or a CalibrationData; None = the
    embedded generated validation set (fine for the embedded model; give real images of your domain
    for official weights). INT8
    artifacts are gated on held-out crops instead (export/int8.py): ParityError when the gate fails,
    unless `allow_accuracy_loss=True` (the failing figures are then flagged in the manifest).
    `int8_options`: an `export.int8.Int8Options` or a dict of its fields.
    """
    spec = get_spec(model)
    runtimes = []
    for t in targets:
        if t not in TARGETS:
            raise InputError(f"unknown export target {t!r}; choose from {', '.join(TARGETS)}")
        runtimes.append(TARGETS[t])
    for p in precisions:
        if p not in ALL_PRECISIONS:
            raise InputError(f"unknown precision {p!r}; export supports {ALL_PRECISIONS}")
        for runtime in runtimes:
            table.support(runtime, p)
            table.check_cpu_feature(runtime, p)
    if "int8" in precisions and calib is None:
        calib, calib_images = embedded_val_set()
        log(f"int8: calibrating on the embedded generated validation set ({calib.parent}); for a model meant "
            "for real photos pass calib=<COCO-WholeBody json or image folder of your domain>")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the export folder {out}: {exc}; give --out a writable folder path") from exc
    (out / MANIFEST).unlink(missing_ok=True)  # a folder is only valid once this run validated everything

    crops_u8 = validation_crops_u8(spec.input_size)
    crops = normalize(crops_u8)
    onnx_source = isinstance(weights, (str, os.PathLike)) and os.fspath(weights).endswith(".onnx")
    fp32_onnx = out / f"{artifact_stem(model, spec.input_size, 'fp32')}.onnx"
    info: dict = {"mean_rgb": MEAN_RGB.tolist(), "std_rgb": STD_RGB.tolist(), "color": "RGB",
                  "input_layout": "NCHW", "outputs": ["simcc_x", "simcc_y"], "split_ratio": 2.0}
    t0 = time.perf_counter()
    if onnx_source:
        check_onnx_file(weights)
        if Path(weights).resolve() != fp32_onnx.resolve():
            shutil.copyfile(weights, fp32_onnx)
        reference = open_runtime("onnxruntime", {"model": fp32_onnx}, threads=threads, input_size=spec.input_size)
        info.update(source={"onnx": os.path.basename(os.fspath(weights)), "sha256": sha256_file(fp32_onnx)},
                    reference="onnxruntime fp32 (CPU) on the source ONNX file", opset=_opset(fp32_onnx))
        torch_model = None
    else:
        require("torch", "dwpose-edge[export]")  # a checkpoint is exported through torch; an ONNX source is not
        from dwpose_edge.export.to_onnx import OPSET, export_onnx  # torch: only on this path
        from dwpose_edge.models import load_model
        from dwpose_edge.runtimes.torch_runtime import TorchRuntime


        torch_model = load_model(model, weights)
        reference = TorchRuntime(torch_model, threads=threads)
        src = {"weights": weights if isinstance(weights, str) else "<state dict>"}
        if isinstance(weights, (str, os.PathLike)) and Path(weights).is_file():
            src["sha256"] = sha256_file(weights)
        info.update(source=src, reference="torch fp32 (CPU)", opset=OPSET)
        log(f"onnx: exporting {model} -> {fp32_onnx.name}")
        export_onnx(torch_model, fp32_onnx)
    artifacts: list[Artifact] = []
    int8_job = None
    for runtime in dict.fromkeys(runtimes):
        for precision in precisions:
            t1 = time.perf_counter()
            if precision == "int8":
                if int8_job is None:
                    opts = Int8Options.from_any(int8_options)
                    if allow_accuracy_loss:
                        opts = replace(opts, allow_accuracy_loss=True)
                    int8_job = Int8Export(fp32_onnx, spec.input_size, reference.infer, calib, calib_images, opts,
                                          threads, log)
                stem = artifact_stem(model, spec.input_size, "int8")
                files, validation, extra = int8_job.export(
                    runtime, out, stem,
                    ncnn_fp32=lambda: _ncnn_fp32(model, spec, out, fp32_onnx, torch_model, onnx_source, artifacts),
                    litert_fp32=lambda: _litert_fp32(model, spec, out, fp32_onnx, torch_model, artifacts))
                artifacts.append(Artifact(runtime, precision, files, validation=validation, extra=extra))
                continue
            files = _convert(runtime, precision, model, spec, out, fp32_onnx, torch_model, onnx_source)
            taken = {name for a in artifacts for name in a.files.values() if a.runtime != runtime}
            if taken & set(files.values()):
                raise ExportError(f"{runtime}/{precision} wrote over another runtime's file: {taken & set(files.values())}")
            candidate = open_runtime(runtime, {k: out / v for k, v in files.items()}, precision=precision,
                                     threads=threads, input_size=spec.input_size)
            agreement = validate(reference.infer, candidate.infer, crops, precision, f"{runtime}/{precision} export")
            log(f"{runtime}/{precision}: {', '.join(files.values())}  within 1px {agreement.within_1px:.2%}, "
                f"mean {agreement.mean_px_error:.3f} px, max logit diff {agreement.max_logit_diff:.2e} "
                f"({time.perf_counter() - t1:.1f} s)")
            extra = {"inference_precision": str(candidate.inference_precision)} if hasattr(
                candidate, "inference_precision") else {}
            artifacts.append(Artifact(runtime, precision, files, validation=agreement.as_dict(), extra=extra))
    info["validation_crops"] = {"n": int(len(crops)), "sha256": _array_hash(crops),
                                "what": "bundled photos (grace_hopper, astronaut): full, centred and seeded random boxes"}
    info["check_set"] = _write_check_set(out, crops_u8, crops, reference, artifacts, threads)
    if int8_job is not None:
        shutil.rmtree(out / ".int8-ncnn-fp32", ignore_errors=True)
        shutil.rmtree(out / ".int8-litert-fp32", ignore_errors=True)
        info["int8"] = int8_job.info()
    info["export_seconds"] = round(time.perf_counter() - t0, 1)
    return write_manifest(out, Manifest(model, spec.input_size, artifacts, info))


def _convert(runtime: str, precision: str, model: str, spec, out: Path, fp32_onnx: Path, torch_model,
             onnx_source: bool) -> dict[str, str]:
    precision = table.support(runtime, precision).file_precision or precision  # bf16 runs the fp32 file
    stem = artifact_stem(model, spec.input_size, precision)
    if runtime == "onnxruntime":
        if precision == "fp32":
            return {"model": fp32_onnx.name}

        return {"model": convert_onnx_fp16(fp32_onnx, out / f"{stem}.onnx").name}
    if runtime == "openvino":
        xml = export_openvino(fp32_onnx, out / f"{stem}.xml", precision)
        return {"xml": xml.name, "bin": xml.with_suffix(".bin").name}
    if runtime == "ncnn":
        if onnx_source:
            param, bin_ = to_ncnn.onnx_to_ncnn(fp32_onnx, out, precision=precision)
        else:
            param, bin_ = to_ncnn.export_ncnn(torch_model, out, precision=precision)
        return {"param": Path(param).name, "bin": Path(bin_).name}
    if runtime == "litert":
        require("torch", "dwpose-edge[litert-export]")  # also for the embedded ONNX: its checkpoint is converted
        from dwpose_edge.export import to_litert  # torch and litert-torch: only on this path

        module = to_litert.module_for_litert(model, torch_model, fp32_onnx)
        fp32_tflite = out / f"{artifact_stem(model, spec.input_size, 'fp32')}.tflite"
        return {"tflite": to_litert.export_litert(module, out / f"{stem}.tflite", precision, fp32_tflite).name}
    raise ExportError(f"no converter for {runtime}")


def _ncnn_fp32(model: str, spec, out: Path, fp32_onnx: Path, torch_model, onnx_source: bool,
               artifacts: list[Artifact]) -> tuple[Path, Path]:
    """The fp32 ncnn model INT8 starts from: the one this run already wrote, else a fresh one (validated)."""
    done = next((a for a in artifacts if a.runtime == "ncnn" and a.precision == "fp32"), None)
    if done is not None:
        return out / done.files["param"], out / done.files["bin"]
    work = out / ".int8-ncnn-fp32"
    files = _convert("ncnn", "fp32", model, spec, work, fp32_onnx, torch_model, onnx_source)
    return work / files["param"], work / files["bin"]


def _write_check_set(out: Path, crops_u8: np.ndarray, crops: np.ndarray, reference, artifacts: list[Artifact],
                     threads: int | None) -> dict:
    """The device check set (check_set.py): the validation crops, the reference's keypoints and each artifact's
    keypoints on this machine, so a device re-runs every gate without torch (device_check.py)."""
    exported = {}
    for a in artifacts:
        runner = open_runtime(a.runtime, {k: out / v for k, v in a.files.items()}, precision=a.precision,
                              threads=threads, input_size=(crops.shape[3], crops.shape[2]))
        exported[a.runtime, a.precision] = keypoint_locations(*run_batched(runner.infer, crops))
    path = write_check_set(out / CHECK_SET, crops_u8, keypoint_locations(*run_batched(reference.infer, crops)),
                           exported)
    return {"file": CHECK_SET, "sha256": sha256_file(path), "n_crops": int(len(crops)),
            "exported_on": cpu_signature()}


def _litert_fp32(model: str, spec, out: Path, fp32_onnx: Path, torch_model, artifacts: list[Artifact]) -> Path:
    """The fp32 .tflite LiteRT INT8 starts from: the one this run already wrote (validated), else a fresh one."""
    done = next((a for a in artifacts if a.runtime == "litert" and a.precision == "fp32"), None)
    if done is not None:
        return out / done.files["tflite"]
    work = out / ".int8-litert-fp32"
    files = _convert("litert", "fp32", model, spec, work, fp32_onnx, torch_model, False)
    return work / files["tflite"]


def _opset(path: Path) -> int:
    return max((o.version for o in onnx.load(str(path), load_external_data=False).opset_import
                if o.domain in ("", "ai.onnx")), default=0)


def _array_hash(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
