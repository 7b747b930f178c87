"""Pose models given as ONNX files: a plain `.onnx` or OpenMMLab's SDK zip, with what the files declare.

A SimCC pose ONNX runs on our crops only if it expects them: the crop size (W, H), the normalisation (RGB,
mmpose's mean/std), the box padding (1.25) and the SimCC split ratio (2.0). `pose_onnx` reads those from
the zip's `pipeline.json` or from a plain file's input shape and `dwpose_edge.*` metadata (written by our
exporter; a file without it, e.g. a bare mmdeploy end2end.onnx, is taken to use mmpose's values, as every
RTMPose/RTMW/DWPose model does), and raises ModelFileError for anything else instead of running it on
differently prepared crops. The model must be COCO-WholeBody's 133 keypoints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dwpose_edge.errors import ModelFileError
from dwpose_edge.onnx_file import checked_facts
from dwpose_edge.sdk_pipeline import POSE, SdkPipeline
from dwpose_edge.sdk_zip import open_sdk_zip
from dwpose_edge.specs import BBOX_PADDING, MEAN_RGB, NUM_KEYPOINTS, SIMCC_SPLIT_RATIO, STD_RGB
from dwpose_edge.weights import REGISTRY, cached_sha256, resolve_weights

if TYPE_CHECKING:
    import onnx


@dataclass(frozen=True)
class PoseOnnx:
    """The ONNX file to run, its crop size (W, H) if declared or static, and the model the registry entry it
    came from holds (None for a file path)."""

    path: Path
    input_size: tuple[int, int] | None
    model: str | None = None


def is_pose_file(weights: object) -> bool:
    """True for what `pose_onnx` opens: a path ending in .onnx or .zip, or a registry name of such a file."""
    if isinstance(weights, str) and weights in REGISTRY:
        return REGISTRY[weights].kind in ("onnx", "zip")
    return isinstance(weights, (str, os.PathLike)) and os.fspath(weights).lower().endswith((".onnx", ".zip"))


def pose_onnx(weights: str | os.PathLike, sha256: str | None = None) -> PoseOnnx:
    """Resolve a registry name (an SDK zip or ONNX entry), an SDK .zip path or an .onnx path; checked as above."""
    model = None
    if isinstance(weights, str) and weights in REGISTRY:
        entry = REGISTRY[weights]
        if entry.kind not in ("onnx", "zip"):
            raise ModelFileError(f"registry entry {weights!r} is a PyTorch checkpoint, not an ONNX file")
        if entry.model is None:
            raise ModelFileError(f"registry entry {weights!r} is a person detector, not a pose model: pass it as "
                                 "detector=")
        model = entry.model
        path = resolve_weights(weights, sha256=sha256)  # downloaded once, verified
    else:  # a local file: its own checks below name what is wrong with it
        path = resolve_weights(weights, sha256=sha256) if sha256 is not None else Path(weights)
    if path.suffix.lower() == ".zip":
        sdk = open_sdk_zip(path, cached_sha256(path))
        if sdk.pipeline.task != POSE:
            raise ModelFileError(f"{path} is an SDK {sdk.pipeline.task} model, not a pose model"
                                 + (": pass it as detector=" if sdk.pipeline.task == "detection" else ""))
        check_pose_pipeline(sdk.pipeline, os.fspath(path))
        declared = sdk.pipeline.input_size  # from pipeline.json, so part of what the cached check covers
        facts = checked_facts(sdk.onnx, f"pose_{declared[0]}x{declared[1]}",
                              lambda proto: {"input_size": _graph_size(proto, sdk.onnx, declared)})
        return PoseOnnx(sdk.onnx, _as_size(facts), model)
    if path.suffix.lower() != ".onnx":
        raise ModelFileError(f"{path}: a pose model file must be an .onnx or an OpenMMLab SDK .zip")
    # corrupt, empty, NaN weights, wrong number of inputs/outputs (check_onnx_file); normalisation and size here
    facts = checked_facts(path, "pose", lambda proto: {"input_size": _pose_input_size(proto, path)})
    return PoseOnnx(path, _as_size(facts), model)


def _pose_input_size(proto: onnx.ModelProto, path: Path) -> list[int] | None:
    """(W, H) of a checked pose ONNX after its metadata and graph checks (ModelFileError if they fail)."""
    meta = {p.key: p.value for p in proto.metadata_props}
    check_metadata(meta, os.fspath(path))
    return _graph_size(proto, path, _size_from_metadata(meta.get("dwpose_edge.input_size"), os.fspath(path)))


def _graph_size(proto: onnx.ModelProto, path: Path, declared: tuple[int, int] | None) -> list[int] | None:
    size = _check_graph(proto.graph, path, declared)
    return list(size) if size else None


def _as_size(facts: dict) -> tuple[int, int] | None:
    return tuple(facts["input_size"]) if facts["input_size"] else None


def check_pose_pipeline(p: SdkPipeline, source: str) -> None:
    """ModelFileError unless the SDK pipeline prepares crops and decodes SimCC as this package does."""
    _check_normalisation(p.mean, p.std, p.to_rgb, source)
    if p.bbox_padding is not None and abs(p.bbox_padding - BBOX_PADDING) > 1e-6:
        raise ModelFileError(f"{source} pads person boxes by {p.bbox_padding}, dwpose-edge by {BBOX_PADDING}: "
                             "not supported")
    if p.simcc_split_ratio is not None and abs(p.simcc_split_ratio - SIMCC_SPLIT_RATIO) > 1e-6:
        raise ModelFileError(f"{source} decodes SimCC with split ratio {p.simcc_split_ratio}, dwpose-edge with "
                             f"{SIMCC_SPLIT_RATIO}: not supported")


def check_metadata(meta: dict[str, str], source: str) -> None:
    """ModelFileError if a plain ONNX's `dwpose_edge.*` metadata declares another normalisation."""
    keys = ("dwpose_edge.mean_rgb", "dwpose_edge.std_rgb")
    if not any(k in meta for k in keys) and "dwpose_edge.color" not in meta:
        return
    try:
        mean = [float(v) for v in meta.get(keys[0], ",".join(map(str, MEAN_RGB.tolist()))).split(",")]
        std = [float(v) for v in meta.get(keys[1], ",".join(map(str, STD_RGB.tolist()))).split(",")]
    except ValueError as exc:
        raise ModelFileError(f"{source}: unreadable mean/std metadata ({exc})") from exc
    _check_normalisation(mean, std, meta.get("dwpose_edge.color", "RGB").upper() == "RGB", source)


def _check_normalisation(mean, std, to_rgb: bool, source: str) -> None:
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    if (not to_rgb or mean.shape != (3,) or std.shape != (3,) or not np.allclose(mean, MEAN_RGB, atol=1e-3)
            or not np.allclose(std, STD_RGB, atol=1e-3)):
        raise ModelFileError(
            f"{source} expects {'RGB' if to_rgb else 'BGR'} crops normalised with mean {mean.tolist()} and std "
            f"{std.tolist()}; dwpose-edge prepares RGB crops with mean {MEAN_RGB.tolist()} and std "
            f"{STD_RGB.tolist()} (mmpose's), so this model would see wrong inputs: not supported")


def _size_from_metadata(value: str | None, source: str) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise ModelFileError(f"{source}: metadata dwpose_edge.input_size {value!r} is not WxH") from None
    return w, h


def _check_graph(graph: onnx.GraphProto, path: Path, declared: tuple[int, int] | None) -> tuple[int, int] | None:
    """(W, H): the static input size, which must agree with `declared`; else `declared`. Also 133 keypoints."""
    init = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init]  # one, and two outputs: check_onnx_file saw to it
    dims = [d.dim_value or None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise ModelFileError(f"{path}: input has rank {len(dims)}, expected (N,3,H,W)")
    static = (dims[3], dims[2]) if dims[2] and dims[3] else None
    if static and declared and static != tuple(declared):
        raise ModelFileError(f"{path}: the model takes {static[0]}x{static[1]} (WxH) crops but its files declare "
                             f"{declared[0]}x{declared[1]}")
    for out in graph.output:
        odims = [d.dim_value or None for d in out.type.tensor_type.shape.dim]
        if len(odims) == 3 and odims[1] is not None and odims[1] != NUM_KEYPOINTS:
            raise ModelFileError(f"{path}: output {out.name} has {odims[1]} keypoints; dwpose-edge runs "
                                 f"COCO-WholeBody models ({NUM_KEYPOINTS} keypoints)")
    return static or declared
