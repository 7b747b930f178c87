"""One pose model opened on one runtime x precision, from whatever the user has: an export folder, a checkpoint,
an .onnx / SDK .zip / registry name, or nothing (the embedded default). What `Estimator` and `auto` both open."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .device_check import ensure_device_check, open_artifact
from .embedded import default_onnx
from .errors import InputError, ModelFileError, WeightsError
from .export.cache import cached_export
from .export.validate import validate, validation_crops
from .manifest import read_manifest
from .onnx_file import is_onnx_path
from .runtimes import precisions
from .runtimes.base import Runtime, open_runtime, runtime_class
from .runtimes.pose_onnx import is_pose_file, pose_onnx
from .specs import RTMW_SPECS, pose_spec


def open_pose_runtime(model: str, weights: Any = None, runtime: str = "onnxruntime", precision: str = "fp32", *,
                      device: str | None = None, threads: int | None = None,
                      model_dir: str | os.PathLike | None = None, calib: Any = None,
                      calib_images: str | os.PathLike | None = None) -> Runtime:
    """The runtime of `model` with these weights (see `Estimator` for the sources, in order); any precision but
    fp32 and any checkpoint is exported and validated on first use into the cache."""
    spec = pose_spec(model)
    if weights is not None and not isinstance(weights, (str, os.PathLike, Mapping)):
        raise WeightsError("weights must be a checkpoint or .onnx/.zip path, a registry name, 'random', a state dict "
                           f"or None (the embedded default), got {type(weights).__name__}")
    runtime_class(runtime)  # validates the name before any heavy work
    precisions.support(runtime, precision)  # and the precision (the device is the runtime's to check)
    precisions.check_cpu_feature(runtime, precision)
    # OpenVINO bf16 runs the fp32 ONNX with a bf16 precision hint: no export, gated against fp32 when it opens
    ov_bf16 = (runtime, precision) == ("openvino", "bf16")
    if model in RTMW_SPECS and (runtime not in ("onnxruntime", "openvino") or precision != "fp32") and not ov_bf16:
        raise InputError(f"{model} runs from its ONNX file only, on runtime onnxruntime or openvino in fp32 (or "
                         f"openvino bf16) (got {runtime}/{precision}): there is no PyTorch model or export of it here")
    if model_dir is not None:
        if runtime == "torch":
            raise InputError("model_dir holds exported files; choose runtime onnxruntime, openvino or ncnn")
        return _open_model_dir(model, model_dir, runtime, precision, device, threads)
    if runtime == "torch":
        return _torch_runtime(model, weights, device, precision, threads)
    if weights is None and model in RTMW_SPECS:
        weights = model  # RTMW: OpenMMLab's SDK zip, registry name = model name
    direct = (runtime in ("onnxruntime", "openvino") and precision == "fp32") or ov_bf16
    if weights is None and direct:
        source = default_onnx(model)  # the embedded ONNX, verified and validated when it was made
        opened = open_runtime(runtime, {"model": source, "xml": source}, precision=precision, device=device,
                              threads=threads, input_size=spec.input_size)
        return (_gate_bf16(opened, _onnx_fp32(source, threads, opened.input_size), "openvino/bf16") if ov_bf16
                else opened)
    if is_pose_file(weights) and direct:
        found = pose_onnx(weights)  # .onnx / SDK .zip / registry name: size and normalisation checked
        if found.model is not None and found.model != model:
            raise InputError(f"weights {weights!r} hold the model {found.model}; pass model={found.model!r}")
        opened = open_runtime(runtime, {"model": found.path, "xml": found.path}, precision=precision, device=device,
                              threads=threads, input_size=spec.input_size)  # a static input shape is checked here first
        if found.input_size is not None and tuple(found.input_size) != tuple(spec.input_size):
            raise ModelFileError(f"{weights} declares {found.input_size[0]}x{found.input_size[1]} (WxH) "
                                 f"crops but {model} takes {spec.input_size[0]}x{spec.input_size[1]}")
        return (_gate_bf16(opened, _onnx_fp32(found.path, threads, opened.input_size), "openvino/bf16") if ov_bf16
                else opened)
    folder = cached_export(model, weights, runtime, precision, threads=threads, calib=calib,
                           calib_images=calib_images)
    return _open_model_dir(model, folder, runtime, precision, device, threads)


def _gate_bf16(opened: Runtime, reference: Any, what: str) -> Runtime:
    """bf16 with no export to gate it (torch autocast, OpenVINO's bf16 hint on an ONNX file): checked when opened
    against fp32 of the same weights (`reference`: its infer) on the bundled crops; ParityError with the figures."""
    opened.validation = validate(reference, opened.infer, validation_crops(opened.input_size), "bf16",
                                 what).as_dict()
    return opened


def _onnx_fp32(path: Any, threads: int | None, input_size: tuple[int, int]) -> Any:
    """onnxruntime fp32 on an ONNX file: the reference of OpenVINO bf16 on the same file."""
    return open_runtime("onnxruntime", {"model": path}, threads=threads, input_size=tuple(input_size)).infer


def _open_model_dir(model: str, model_dir: str | os.PathLike, runtime: str, precision: str, device: str | None,
                    threads: int | None) -> Runtime:
    """Open one artifact of a folder written by `dwpose-edge export`, after checking model name and sha256, and
    re-run its gate on this machine (`device_check`)."""
    manifest = read_manifest(model_dir)
    if manifest.model != model:
        raise ModelFileError(f"{model_dir} holds an export of {manifest.model}, not {model}; "
                             f"use Estimator(model='{manifest.model}', model_dir=...)")
    artifact = manifest.find(runtime, precision)
    opened = open_artifact(model_dir, manifest, artifact, device=device, threads=threads)
    # the export's gate again, on this machine (once per artifact and CPU): ParityError if it computes differently
    opened.device_check = ensure_device_check(model_dir, manifest, artifact, opened)
    return opened


def _torch_runtime(model: str, weights: Any, device: str | None, precision: str, threads: int | None) -> Runtime:
    """The torch runtime on `weights` (checkpoint, registry name, state dict, 'random' or None = embedded)."""
    if is_onnx_path(weights):
        raise InputError("an .onnx file runs on runtime='onnxruntime', 'openvino' or 'ncnn', not torch")
    torch_runtime = runtime_class("torch")  # RuntimeUnavailableError with the pip extra when torch is missing
    from .models import load_model  # torch: only on this path

    runtime = torch_runtime(load_model(model, weights), device=device or "cpu", precision=precision, threads=threads)
    return _gate_bf16(runtime, runtime.reference, "torch/bf16") if precision == "bf16" else runtime
