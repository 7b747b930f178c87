"""The preprocessing an mmdeploy SDK model folder declares (`pipeline.json` + `deploy.json`), as a small dataclass.

mmdeploy's `export2SDK` writes the model's test pipeline into `pipeline.json`: a `Transform` task (the image
transforms), a `Net` task (the model) and a postprocess task (`ResizeBBox` for detectors, `SimCCLabelDecode`
for SimCC pose models), and the backend files into `deploy.json` (`models[0].net`, e.g. `end2end.onnx`).
`parse_sdk` reads both into an `SdkPipeline`; a transform or setting this package does not reproduce is a
ModelFileError naming it, never a silently different input.

Detection transforms (mmdet test pipeline + the data preprocessor mmdeploy appends): `Resize` (`size` W,H;
`keep_ratio`), `Pad` (`size` W,H, `pad_to_square`, `size_divisor`, `pad_val`), `Normalize` (`mean`, `std`,
`to_rgb`). Pose transforms (mmpose top-down): `TopDownGetBboxCenterScale` (`padding`), `TopDownAffine`
(`image_size` W,H), `Normalize`. Loading, formatting and collecting steps carry no numbers and are skipped.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from .errors import ModelFileError

DETECTION, POSE = "detection", "pose"
# postprocess component -> task kind; deploy.json's "task" must agree
_COMPONENTS = {"ResizeBBox": DETECTION, "SimCCLabelDecode": POSE}
_DEPLOY_TASKS = {"Detector": DETECTION, "PoseDetector": POSE}
# steps without numbers that matter for the input tensor
_SKIPPED = {"LoadImageFromFile", "LoadAnnotations", "DefaultFormatBundle", "Collect", "ImageToTensor",
            "PackDetInputs", "PackPoseInputs"}


@dataclass(frozen=True)
class PadStep:
    """One `Pad` transform: to `size` (W, H), to a square, and/or to multiples of `size_divisor`, bottom/right,
    with `value`; `after_normalize`: it comes after Normalize, so `value` is a normalized value."""

    size: tuple[int, int] | None = None
    to_square: bool = False
    size_divisor: int = 1
    value: float = 0.0
    after_normalize: bool = False


@dataclass(frozen=True)
class SdkPipeline:
    """What a model folder says about its input. `input_size` is (W, H): the Resize target of a detector, the
    crop size of a pose model. `mean`/`std` apply to the channels after the optional BGR->RGB swap (`to_rgb`)."""

    task: str  # "detection" | "pose"
    onnx_name: str
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    to_rgb: bool
    keep_ratio: bool = True  # detection
    pads: tuple[PadStep, ...] = ()  # detection, in order
    score_threshold: float | None = None  # detection postprocess `score_thr`, for information
    bbox_padding: float | None = None  # pose
    simcc_split_ratio: float | None = None  # pose


def parse_sdk(pipeline: Any, deploy: Any, source: str | os.PathLike = "pipeline.json") -> SdkPipeline:
    """Parse the loaded JSON of `pipeline.json` and `deploy.json`; ModelFileError on anything not understood."""
    src = os.fspath(source)
    onnx_name = _onnx_name(deploy, src)
    tasks = _get(_get(pipeline, "pipeline", src, dict), "tasks", src, list)
    transforms = next((t.get("transforms") for t in tasks if isinstance(t, dict) and t.get("module") == "Transform"),
                      None)
    post = next((t for t in tasks if isinstance(t, dict) and "component" in t), None)
    if not isinstance(transforms, list) or post is None:
        raise ModelFileError(f"{src}: no Transform task with 'transforms' and no postprocess 'component': not an "
                             "mmdeploy SDK pipeline")
    component = post["component"]
    if component not in _COMPONENTS:
        raise ModelFileError(f"{src}: postprocess {component!r} is not supported; dwpose-edge runs SDK detectors "
                             f"(ResizeBBox: boxes) and SimCC pose models (SimCCLabelDecode)")
    task = _COMPONENTS[component]
    declared = _DEPLOY_TASKS.get(deploy.get("task")) if isinstance(deploy, dict) else None
    if declared is not None and declared != task:
        raise ModelFileError(f"{src}: deploy.json says task {deploy.get('task')!r} but the pipeline ends in "
                             f"{component}: the files of two different models?")
    params = post.get("params") if isinstance(post.get("params"), dict) else {}
    steps = [t for t in transforms if isinstance(t, dict) and t.get("type") not in _SKIPPED]
    if task == DETECTION:
        return _detection(steps, onnx_name, params, src)
    return _pose(steps, onnx_name, params, src)


def _detection(steps: list[dict], onnx_name: str, params: dict, src: str) -> SdkPipeline:
    size, keep_ratio, pads, norm = None, True, [], None
    for t in steps:
        kind = t["type"]
        if kind == "Resize":
            if size is not None:
                raise ModelFileError(f"{src}: two Resize transforms; dwpose-edge reproduces one")
            size = _size(t.get("size", t.get("scale")), f"{src}: Resize size")
            keep_ratio = bool(t.get("keep_ratio", False))
        elif kind == "Pad":
            pads.append(_pad(t, src, after_normalize=norm is not None))
        elif kind == "Normalize":
            norm = _normalize(t, src, norm)
        else:
            raise ModelFileError(f"{src}: detection transform {kind!r} is not supported (dwpose-edge reproduces "
                                 "Resize, Pad and Normalize)")
    if size is None:
        raise ModelFileError(f"{src}: no Resize transform: the detector's input size is not declared")
    mean, std, to_rgb = norm if norm is not None else ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False)
    score = params.get("score_thr")
    return SdkPipeline(DETECTION, onnx_name, size, mean, std, to_rgb, keep_ratio=keep_ratio, pads=tuple(pads),
                       score_threshold=float(score) if isinstance(score, (int, float)) else None)


def _pose(steps: list[dict], onnx_name: str, params: dict, src: str) -> SdkPipeline:
    size, padding, norm = None, None, None
    for t in steps:
        kind = t["type"]
        if kind in ("TopDownGetBboxCenterScale", "GetBBoxCenterScale"):
            padding = float(t.get("padding", 1.25))
        elif kind in ("TopDownAffine", "TopdownAffine"):
            if t.get("use_udp"):
                raise ModelFileError(f"{src}: TopDownAffine with use_udp is not supported (dwpose-edge crops as "
                                     "mmpose's default, non-UDP affine)")
            size = _size(t.get("image_size", t.get("input_size")), f"{src}: TopDownAffine image_size")
        elif kind == "Normalize":
            norm = _normalize(t, src, norm)
        else:
            raise ModelFileError(f"{src}: pose transform {kind!r} is not supported (dwpose-edge reproduces "
                                 "TopDownGetBboxCenterScale, TopDownAffine and Normalize)")
    if size is None:
        raise ModelFileError(f"{src}: no TopDownAffine transform: the crop size is not declared")
    if norm is None:
        raise ModelFileError(f"{src}: no Normalize transform: the pose model's mean/std are not declared")
    declared = params.get("input_size")
    if declared is not None and _size(declared, f"{src}: SimCCLabelDecode input_size") != size:
        raise ModelFileError(f"{src}: SimCCLabelDecode input_size {declared} differs from the crop size {list(size)}")
    if params.get("use_dark"):
        raise ModelFileError(f"{src}: SimCC decoding with use_dark is not supported")
    ratio = float(params.get("simcc_split_ratio", 2.0))
    return SdkPipeline(POSE, onnx_name, size, *norm, bbox_padding=1.25 if padding is None else padding,
                       simcc_split_ratio=ratio)


def _onnx_name(deploy: Any, src: str) -> str:
    models = deploy.get("models") if isinstance(deploy, dict) else None
    if not isinstance(models, list) or not models or not isinstance(models[0], dict):
        raise ModelFileError(f"{src}: deploy.json has no 'models' list: not an mmdeploy SDK model")
    model = models[0]
    backend, net = model.get("backend"), model.get("net")
    if backend != "onnxruntime" or not isinstance(net, str) or not net.endswith(".onnx"):
        raise ModelFileError(f"{src}: deploy.json declares backend {backend!r} with net {net!r}; dwpose-edge runs "
                             "the ONNX Runtime SDK models (backend 'onnxruntime', net '*.onnx')")
    if os.path.basename(net) != net or net in (".", ".."):
        raise ModelFileError(f"{src}: deploy.json names the model file {net!r}, which is not a bare file name")
    return net


def _normalize(t: dict, src: str, previous) -> tuple:
    if previous is not None:
        raise ModelFileError(f"{src}: two Normalize transforms; dwpose-edge reproduces one")
    mean = _triple(t.get("mean"), f"{src}: Normalize mean")
    std = _triple(t.get("std"), f"{src}: Normalize std")
    if any(s == 0 for s in std):
        raise ModelFileError(f"{src}: Normalize std {list(std)} has a zero")
    return mean, std, bool(t.get("to_rgb", False))


def _pad(t: dict, src: str, after_normalize: bool) -> PadStep:
    size = t.get("size")
    divisor = t.get("size_divisor") or 1
    if not isinstance(divisor, int) or divisor < 1:
        raise ModelFileError(f"{src}: Pad size_divisor {divisor!r} is not a positive integer")
    value = t.get("pad_val", 0)
    if isinstance(value, dict):
        value = value.get("img", 0)
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ModelFileError(f"{src}: Pad pad_val {value} differs per channel; dwpose-edge pads with one value")
        value = value[0]
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelFileError(f"{src}: Pad pad_val {value!r} is not a number")
    return PadStep(_size(size, f"{src}: Pad size") if size is not None else None,
                   bool(t.get("pad_to_square", False)), divisor, float(value), after_normalize)


def _size(value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ModelFileError(f"{what} is {value!r}, expected [W, H] positive integers")
    return int(value[0]), int(value[1])


def _triple(value: Any, what: str) -> tuple[float, float, float]:
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise ModelFileError(f"{what} is {value!r}, expected three numbers")
    return float(value[0]), float(value[1]), float(value[2])


def _get(obj: Any, key: str, src: str, kind: type) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind):
        raise ModelFileError(f"{src}: missing {key!r} ({kind.__name__}): not an mmdeploy SDK pipeline.json")
    return value
