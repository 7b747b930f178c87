"""What users run instead of dwpose_edge: rtmlib's RTMPose, and a plain onnxruntime loop written as in its README.

Both take the same ONNX file, image and boxes as our Estimator. Known divergences of rtmlib 0.0.16
(`rtmlib/tools/pose_estimation/rtmpose.py`, `post_processings.py`): it normalizes the BGR frame
with RGB mean/std, i.e. feeds BGR to a model trained on RGB (keypoints move unless the caller
converts), and scores a keypoint with the mean of the x/y SimCC maxima where mmpose takes the min.
"""
from __future__ import annotations

import contextlib
import io
import os

import cv2
import numpy as np
import onnxruntime as ort

from dwpose_edge.specs import MEAN_RGB, SIMCC_SPLIT_RATIO, STD_RGB


def rtmlib_pose(onnx_path: str | os.PathLike, input_size: tuple[int, int], threads: int | None = None):
    """(rtmlib.RTMPose on onnxruntime CPU, None), or (None, reason) when rtmlib cannot be imported.

    With `threads`, rtmlib's session is rebuilt with that intra-op thread count (rtmlib has no
    option for it) so that it and we use the same cores; its pre/post-processing is untouched.
    """
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from rtmlib import RTMPose

            pose = RTMPose(os.fspath(onnx_path), model_input_size=tuple(input_size), backend="onnxruntime",
                           device="cpu")
        if threads:
            pose.session = ort_loop_session(onnx_path, threads)
        return pose, None
    except ImportError as exc:
        return None, f"rtmlib not installed ({exc}); pip install --no-deps rtmlib (it pins opencv-python)"
    except Exception as exc:  # noqa: BLE001 - any failure of a third-party peer is a skip with its reason
        return None, f"rtmlib failed to load the model: {type(exc).__name__}: {exc}"


def ort_loop_session(onnx_path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU session as a user creates it; default options except the intra-op thread count."""
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    return ort.InferenceSession(os.fspath(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])


def _warp(center: np.ndarray, scale: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """rtmlib-style affine (float64 maths, float32 points)."""
    w, h = size
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + np.array([0.0, scale[0] * -0.5])
    dst[0] = [w * 0.5, h * 0.5]
    dst[1] = np.array([w * 0.5, h * 0.5]) + np.array([0.0, w * -0.5])
    for p in (src, dst):
        d = p[0] - p[1]
        p[2] = p[1] + np.r_[-d[1], d[0]]
    return cv2.getAffineTransform(src, dst)


def ort_loop(session, image_bgr: np.ndarray, boxes_xyxy: np.ndarray,
             input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per box: center/scale (padding 1.25, aspect fixed), warp, float64 normalize, run at batch 1, decode.

    Converts BGR to RGB (what a careful user does); score = min of the x/y maxima as mmpose.
    Returns keypoints (N,133,2) and scores (N,133) in image pixels.
    """
    w, h = input_size
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    name = session.get_inputs()[0].name
    kps, scs = [], []
    for box in np.asarray(boxes_xyxy, np.float64):
        center = (box[:2] + box[2:]) * 0.5
        scale = (box[2:] - box[:2]) * 1.25
        scale = np.array([scale[0], scale[0] / (w / h)]) if scale[0] > scale[1] * (w / h) else \
            np.array([scale[1] * (w / h), scale[1]])
        crop = cv2.warpAffine(rgb, _warp(center, scale, (w, h)), (w, h), flags=cv2.INTER_LINEAR)
        x = ((crop - MEAN_RGB.astype(np.float64)) / STD_RGB.astype(np.float64)).transpose(2, 0, 1)
        simcc_x, simcc_y = session.run(None, {name: np.ascontiguousarray(x[None], dtype=np.float32)})
        if simcc_x.shape[-1] != w * SIMCC_SPLIT_RATIO:  # outputs in the other order
            simcc_x, simcc_y = simcc_y, simcc_x
        locs = np.stack([simcc_x[0].argmax(-1), simcc_y[0].argmax(-1)], -1) / SIMCC_SPLIT_RATIO
        kps.append(locs / np.array([w, h]) * scale + center - scale / 2)
        scs.append(np.minimum(simcc_x[0].max(-1), simcc_y[0].max(-1)))
    return np.stack(kps).astype(np.float32), np.stack(scs).astype(np.float32)


def compare_keypoints(ref_kp: np.ndarray, ref_scores: np.ndarray, kp: np.ndarray, scores: np.ndarray) -> dict:
    """Keypoint distance in image pixels and score difference of a peer against our output."""
    kp = np.asarray(kp, np.float64).reshape(ref_kp.shape)
    err = np.linalg.norm(kp - np.asarray(ref_kp, np.float64), axis=-1)
    ds = np.abs(np.asarray(scores, np.float64).reshape(ref_scores.shape) - ref_scores)
    return {"mean_px_error": round(float(err.mean()), 4), "max_px_error": round(float(err.max()), 3),
            "within_1px": round(float((err <= 1).mean()), 6), "within_2px": round(float((err <= 2).mean()), 6),
            "within_5px": round(float((err <= 5).mean()), 6), "mean_abs_score_diff": round(float(ds.mean()), 5),
            "max_abs_score_diff": round(float(ds.max()), 5)}
