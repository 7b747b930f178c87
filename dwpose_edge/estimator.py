"""`Estimator`: image (+ boxes) in, whole-body keypoints out, on any runtime."""
from __future__ import annotations

import inspect
import os
import threading
import warnings
from typing import Any

import numpy as np

from .auto import resolve
from .detectors import make_detector
from .errors import InputError, ModelFileError
from .pose_runtime import open_pose_runtime
from .postprocess import decode_simcc, merge_flip
from .preprocess import CropWorkspace, check_boxes, check_image, crop_boxes
from .presets import preset_arguments
from .result import PoseResult
from .runtimes.base import Runtime, check_batch
from .specs import NUM_KEYPOINTS, RTMW_SPECS, pose_spec

EMBEDDED_NOTE = ("dwpose-edge: Estimator() without weights runs the embedded model, which was trained on generated "
                 "people only: for real photos use Estimator.from_preset(\"balanced\") (command line: --preset "
                 "balanced), or \"performance\", which needs no PyTorch (presets: dwpose_edge.presets)")
_embedded_noted = False  # EMBEDDED_NOTE is given once per process
_note_lock = threading.Lock()


def _note_embedded_default() -> None:
    """Warn once per process that the embedded default is not a model for real photos."""
    global _embedded_noted
    with _note_lock:
        if _embedded_noted:
            return
        _embedded_noted = True
    warnings.warn(EMBEDDED_NOTE, UserWarning, stacklevel=3)


def check_threads(threads: Any) -> int | None:
    """`threads` as given to a runtime: None (or 0) = the runtime's default, else a positive int."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
        raise InputError(f"threads must be a positive integer, or None/0 for the runtime's default; got {threads!r}")
    return int(threads) or None


def _as_boxes(boxes: Any) -> np.ndarray:
    try:
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, which check_boxes refuses
            return np.asarray(boxes, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"boxes must be numeric (N,4) x1,y1,x2,y2: {exc}") from None


class Estimator:
    """Top-down whole-body pose estimation.

    `est(image_bgr, boxes=None)` crops every box (mmpose's padding and affine),
    runs the crops through the runtime in batches of `batch_size`, decodes SimCC
    and returns a PoseResult in image pixels. `boxes=None` asks the detector: 'none' (default:
    the whole image is one person), 'hog', 'yolox', an OpenMMLab SDK detector by registry name
    ('yolox-tiny-humanart', 'yolox-m-humanart', 'yolox-x-humanart') or .zip path, a YOLOX-style .onnx
    path, or any object with `detect(image) -> (boxes, scores)`. A detector that finds nobody gives an
    empty result.

    For real photos, `Estimator.from_preset("balanced")` (or "performance", "lightweight") picks an official
    pose model and person detector; with no weights the embedded model runs, trained on generated people only
    (a UserWarning says so once per process).

    Model source, in order: `model_dir` (a folder from `dwpose-edge export`); runtime 'torch':
    `weights` as a checkpoint path / registry name / state dict / 'random' / None (= embedded
    default; needs the `dwpose-edge[torch]` extra); other runtimes: an `.onnx` `weights` path
    (official DWPose / mmdeploy files work), an OpenMMLab SDK `.zip` or a registry name of either
    (crop size and normalisation read from the files), or None (= the embedded default, shipped as a
    validated ONNX; for the ONNX-only RTMW models, e.g. model='rtmw-l-384x288', their registry zip) run
    directly in fp32 with no PyTorch, and any other precision or a checkpoint is exported
    and validated on first use into the cache (`export.cache`; a checkpoint needs `dwpose-edge[export]`).
    `precision='int8'` is calibrated on `calib` (+ `calib_images`; see `export_model`; None = the
    embedded validation set) and must pass the INT8 accuracy gate, else ParityError.

    One instance may be called from several threads at once (every runtime here is thread-safe;
    see README "Errors and guarantees"). Memory per call is bounded by `batch_size` crops, whatever
    the number of boxes.
    """

    def __init__(self, model: str = "dwpose-t", weights: Any = None, runtime: str = "onnxruntime",
                 device: str | None = None, precision: str = "fp32", flip_test: bool = False,
                 batch_size: int = 16, threads: int | None = None,
                 model_dir: str | os.PathLike | None = None, detector: Any = "none", calib: Any = None,
                 calib_images: str | os.PathLike | None = None) -> None:
        try:
            self.spec = pose_spec(model)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        threads = check_threads(threads)
        self.decision = None  # what runtime/precision 'auto' chose, with every candidate's figures
        if "auto" in (runtime, precision):
            self.decision = resolve(model, weights, runtime, precision, threads=threads, device=device,
                                    model_dir=model_dir)
            runtime, precision = self.decision.runtime, self.decision.precision
        self.flip_test = flip_test
        self.batch_size = int(batch_size)
        self._local = threading.local()  # per-thread crop buffers
        self.runtime: Runtime = open_pose_runtime(model, weights, runtime, precision, device=device, threads=threads,
                                                  model_dir=model_dir, calib=calib, calib_images=calib_images)
        self.detector = make_detector(detector, runtime=runtime, threads=threads)
        self.input_size = tuple(self.runtime.input_size)
        if self.input_size != tuple(self.spec.input_size):
            raise ModelFileError(f"the model takes {self.input_size} crops but {model} needs {self.spec.input_size}")
        if weights is None and model_dir is None and model not in RTMW_SPECS:
            _note_embedded_default()  # the embedded model: say once that it is not one for real photos

    @classmethod
    def from_preset(cls, name: str, *, progress: bool = True, **overrides: Any) -> Estimator:
        """An Estimator for real photos: a pose model and a person detector by one name, 'performance',
        'balanced' or 'lightweight' (see `dwpose_edge.presets`), with their files downloaded once into the weights
        cache and verified first (offline, one WeightsError names every missing file and where to put it).
        `overrides` are any other Estimator arguments (runtime, precision, threads, flip_test, detector...)."""
        options = [n for n in inspect.signature(cls.__init__).parameters if n != "self"]
        return cls(**preset_arguments(name, overrides, options, progress=progress))

    def infer_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SimCC logits for normalized crops (N,3,H,W), batched, with flip test when enabled."""
        crops = check_batch(crops, self.input_size)
        if not np.isfinite(crops).all():
            raise InputError("crops contain NaN or inf; make them with dwpose_edge.preprocess.crop_boxes "
                             "from a uint8 image")
        return self._infer(crops)

    def _infer(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for i in range(0, len(crops), self.batch_size):
            chunk = crops[i:i + self.batch_size]
            sx, sy = self.runtime.infer(chunk)
            if self.flip_test:
                fx, fy = self.runtime.infer(np.ascontiguousarray(chunk[..., ::-1]))
                sx, sy = merge_flip((sx, sy), (fx, fy))
            self._check_logits(sx, sy)
            xs.append(sx)
            ys.append(sy)
        if len(xs) == 1:
            # no copy: a fresh multi-MB array per call pays its page faults (glibc trims the freed heap), measured
            # 3.5 ms of a 35 ms call at 8 persons (OpenVINO bf16, 1 thread)
            return xs[0], ys[0]
        return np.concatenate(xs), np.concatenate(ys)

    def _check_logits(self, simcc_x: np.ndarray, simcc_y: np.ndarray) -> None:
        if not (np.isfinite(simcc_x).all() and np.isfinite(simcc_y).all()):
            rt = self.runtime
            raise ModelFileError(
                f"the {rt.name}/{getattr(rt, 'precision', 'fp32')} model returned NaN/inf logits for finite input: "
                "its weights are corrupt (NaN/inf values) or its precision overflows; re-export the model "
                "from a good checkpoint (an fp16/int8 model: try precision='fp32')")

    def __call__(self, image_bgr: np.ndarray, boxes: np.ndarray | None = None) -> PoseResult:
        """Keypoints of every box (N,4 x1,y1,x2,y2 image pixels; None = ask the detector) of a BGR uint8 image."""
        image = check_image(image_bgr)
        if boxes is None:
            boxes, _ = self.detector.detect(image)
        boxes = _as_boxes(boxes)
        if boxes.size == 0:
            return PoseResult(np.zeros((0, NUM_KEYPOINTS, 2), np.float32), np.zeros((0, NUM_KEYPOINTS), np.float32),
                              np.zeros((0, 4), np.float32))
        boxes = check_boxes(boxes, image.shape)
        workspace = getattr(self._local, "workspace", None)
        if workspace is None:
            workspace = self._local.workspace = CropWorkspace()
        keypoints, scores = [], []
        for i in range(0, len(boxes), self.batch_size):  # crops and logits of one batch at a time: bounded memory
            crops, centers, scales = crop_boxes(image, boxes[i:i + self.batch_size], self.input_size, workspace)
            simcc_x, simcc_y = self._infer(crops)
            k, s = decode_simcc(simcc_x, simcc_y, centers, scales, self.input_size)
            keypoints.append(k)
            scores.append(s)
        return PoseResult(np.concatenate(keypoints), np.concatenate(scores), boxes)
