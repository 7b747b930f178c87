"""Build mmdeploy SDK models for tests: end2end detector ONNX files with onnx.helper, pipeline.json /
deploy.json in mmdeploy's layout (as export2SDK writes them for mmdet 3.x YOLOX and mmpose 1.x RTMPose),
and zips of them."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MEAN_RGB = [123.675, 116.28, 103.53]
STD_RGB = [58.395, 57.12, 57.375]


def end2end_onnx(path: Path, dets: np.ndarray, labels: np.ndarray, input_hw: tuple[int, int] | None = (640, 640),
                 names: tuple[str, str] = ("dets", "labels")) -> Path:
    """The end2end contract: `input` (1,3,H,W) -> dets (1,N,5) float32, labels (1,N) int64. The outputs are
    constants (plus 0 * mean(input), so the input is consumed); `input_hw=None` makes H, W dynamic."""
    n = len(dets)
    consts = [numpy_helper.from_array(np.asarray(dets, np.float32)[None], "d"),
              numpy_helper.from_array(np.asarray(labels, np.int64)[None], "l"),
              numpy_helper.from_array(np.zeros((1,), np.float32), "zero")]
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["d", "z"], [names[0]]),
             helper.make_node("Identity", ["l"], [names[1]])]
    hw = list(input_hw) if input_hw else ["height", "width"]
    graph = helper.make_graph(
        nodes, "end2end_stub", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, *hw])],
        [helper.make_tensor_value_info(names[0], TensorProto.FLOAT, [1, n, 5]),
         helper.make_tensor_value_info(names[1], TensorProto.INT64, [1, n])], initializer=consts)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def detection_pipeline(size=(640, 640), keep_ratio=True, pad=None, mean=(0, 0, 0), std=(1, 1, 1), to_rgb=False,
                       divisor=1, extra=()) -> dict:
    """pipeline.json of an mmdet 3.x YOLOX export: Resize, Pad, then the data preprocessor's Normalize and
    Pad(size_divisor) that mmdeploy appends."""
    transforms = [{"type": "LoadImageFromFile", "backend_args": None},
                  {"type": "Resize", "keep_ratio": keep_ratio, "size": list(size)}]
    if pad is not None:
        transforms.append(pad)
    transforms += [*extra,
                   {"type": "Normalize", "to_rgb": to_rgb, "mean": list(mean), "std": list(std)},
                   {"type": "Pad", "size_divisor": divisor},
                   {"type": "DefaultFormatBundle"},
                   {"type": "Collect", "meta_keys": ["img_shape", "scale_factor", "ori_shape"], "keys": ["img"]}]
    return {"pipeline": {"input": ["img"], "output": ["post_output"], "tasks": [
        {"type": "Task", "module": "Transform", "name": "Preprocess", "input": ["img"], "output": ["prep_output"],
         "transforms": transforms},
        {"name": "yolox", "type": "Task", "module": "Net", "input": ["prep_output"], "output": ["infer_output"],
         "input_map": {"img": "input"}, "output_map": {}},
        {"type": "Task", "module": "mmdet", "name": "postprocess", "component": "ResizeBBox",
         "params": {"score_thr": 0.01, "nms": {"type": "nms", "iou_threshold": 0.65}, "max_per_img": 100},
         "output": ["post_output"], "input": ["prep_output", "infer_output"]}]}}


def pose_pipeline(size=(192, 256), mean=MEAN_RGB, std=STD_RGB, to_rgb=True, padding=1.25, split=2.0) -> dict:
    """pipeline.json of an mmpose 1.x RTMPose/RTMW export."""
    transforms = [{"type": "LoadImageFromFile"},
                  {"type": "TopDownGetBboxCenterScale", "padding": padding, "image_size": list(size)},
                  {"type": "TopDownAffine", "image_size": list(size)},
                  {"type": "Normalize", "mean": list(mean), "std": list(std), "to_rgb": to_rgb},
                  {"type": "ImageToTensor", "keys": ["img"]},
                  {"type": "Collect", "keys": ["img"], "meta_keys": ["img_shape", "center", "scale"]}]
    return {"pipeline": {"input": ["img"], "output": ["post_output"], "tasks": [
        {"type": "Task", "module": "Transform", "name": "Preprocess", "input": ["img"], "output": ["prep_output"],
         "transforms": transforms},
        {"name": "topdownposeestimator", "type": "Task", "module": "Net", "is_batched": True,
         "input": ["prep_output"], "output": ["infer_output"], "input_map": {"img": "input"}, "output_map": {}},
        {"type": "Task", "module": "mmpose", "name": "postprocess", "component": "SimCCLabelDecode",
         "params": {"flip_test": False, "type": "SimCCLabel", "input_size": list(size), "sigma": [4.9, 5.66],
                    "simcc_split_ratio": split, "normalize": False, "use_dark": False, "decode_visibility": True},
         "output": ["post_output"], "input": ["prep_output", "infer_output"]}]}}


def deploy(task: str = "Detector", net: str = "end2end.onnx", backend: str = "onnxruntime") -> dict:
    name = "yolox" if task == "Detector" else "topdownposeestimator"
    return {"version": "1.3.1", "task": task, "models": [
        {"name": name, "net": net, "weights": "", "backend": backend, "precision": "FP32", "batch_size": 1,
         "dynamic_shape": False}], "customs": []}


def sdk_files(onnx_path: Path, pipeline: dict, deploy_json: dict) -> dict[str, bytes]:
    return {"end2end.onnx": onnx_path.read_bytes(), "pipeline.json": json.dumps(pipeline).encode(),
            "deploy.json": json.dumps(deploy_json).encode(),
            "detail.json": json.dumps({"version": "1.3.1", "codebase": {}}).encode()}


def write_zip(path: Path, files: dict[str, bytes], top: str | None = "model") -> Path:
    """Members `<top>/<name>` (or bare names), stored uncompressed (fast for 20 MB ONNX files)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        if top:
            zf.writestr(zipfile.ZipInfo(top + "/"), b"")
        for name, data in files.items():
            zf.writestr(f"{top}/{name}" if top else name, data)
    return path


def end2end_nms_onnx(path: Path, boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5,
                     score_threshold: float = 0.05) -> Path:
    """An end2end graph shaped like mmdeploy's: candidate boxes (A,4) and one class's scores (A,) go through
    ONNX NonMaxSuppression, so dets (1,K,5) and labels (1,K) have a dynamic K decided in the graph."""
    assert len(boxes) == len(scores)
    init = [numpy_helper.from_array(np.asarray(boxes, np.float32)[None], "boxes"),
            numpy_helper.from_array(np.asarray(scores, np.float32)[None, None], "scores0"),
            numpy_helper.from_array(np.zeros((1,), np.float32), "zero"),
            numpy_helper.from_array(np.array([100], np.int64), "max_out"),
            numpy_helper.from_array(np.array([iou_threshold], np.float32), "iou"),
            numpy_helper.from_array(np.array([score_threshold], np.float32), "thr"),
            numpy_helper.from_array(np.array([1], np.int64), "one"),
            numpy_helper.from_array(np.array([2], np.int64), "two"),
            numpy_helper.from_array(np.array([0], np.int64), "axis0"),
            numpy_helper.from_array(np.array([-1], np.int64), "axis_last")]
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["scores0", "z"], ["scores"]),
             helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "thr"], ["sel"]),
             helper.make_node("Gather", ["sel", "two"], ["idx2"], axis=1),     # (K,1) box index
             helper.make_node("Gather", ["sel", "one"], ["cls2"], axis=1),     # (K,1) class
             helper.make_node("Squeeze", ["idx2", "axis_last"], ["idx"]),
             helper.make_node("Squeeze", ["cls2", "axis_last"], ["cls"]),
             helper.make_node("Squeeze", ["boxes", "axis0"], ["boxes0"]),      # (A,4)
             helper.make_node("Reshape", ["scores", "axis_last"], ["scores_flat"]),
             helper.make_node("Gather", ["boxes0", "idx"], ["kb"], axis=0),    # (K,4)
             helper.make_node("Gather", ["scores_flat", "idx"], ["ks"], axis=0),  # (K,)
             helper.make_node("Unsqueeze", ["ks", "axis_last"], ["ks2"]),
             helper.make_node("Concat", ["kb", "ks2"], ["d2"], axis=1),
             helper.make_node("Unsqueeze", ["d2", "axis0"], ["dets"]),
             helper.make_node("Unsqueeze", ["cls", "axis0"], ["labels"])]
    graph = helper.make_graph(
        nodes, "end2end_nms", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, "num_dets", 5]),
         helper.make_tensor_value_info("labels", TensorProto.INT64, [1, "num_dets"])], initializer=init)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path
