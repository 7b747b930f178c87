"""`DwposeDetector`: the ControlNet DWPose annotator's call (controlnet_aux 0.0.10's `DwposeDetector`) around
our Estimator: RGB image in, the conditioning canvas out (and ComfyUI's POSE_KEYPOINT dict on request).

What happens around the model is controlnet_aux 0.0.10's, pixel for pixel: the RGB input to BGR, HWC3, the
image resized to `detect_resolution` (`resize_image`: short side to the resolution, both sides rounded to a
multiple of 64, Lanczos when enlarging, area otherwise), keypoints and canvas at that size, and the canvas
resized (linear) to the size `resize_image` gives the detection image for `image_resolution`.
"""
from __future__ import annotations

import warnings
from typing import Any

import cv2
import numpy as np

from .errors import InputError, RuntimeUnavailableError
from .estimator import Estimator
from .openpose import draw_openpose_points, to_openpose_points
from .pose_json import to_comfyui
from .result import PoseResult

try:  # Pillow: only for output_type="pil" (PIL images are read as arrays without it)
    from PIL import Image
except ImportError:  # pragma: no cover - Pillow comes with most installs
    Image = None

# comfyui_controlnet_aux's `upscale_method` names
UPSCALE_METHODS = {"INTER_NEAREST": cv2.INTER_NEAREST, "INTER_LINEAR": cv2.INTER_LINEAR, "INTER_AREA": cv2.INTER_AREA,
                   "INTER_CUBIC": cv2.INTER_CUBIC, "INTER_LANCZOS4": cv2.INTER_LANCZOS4}
OUTPUT_TYPES = ("pil", "np")


def hwc3(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W), (H, W, 1|3|4) as (H, W, 3): grey repeated, RGBA composited on white (ControlNet's HWC3)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise InputError(f"image must be a uint8 array, got {getattr(image, 'dtype', type(image).__name__)}")
    x = image[:, :, None] if image.ndim == 2 else image
    if x.ndim != 3 or x.shape[2] not in (1, 3, 4):
        raise InputError(f"image must be (H, W) or (H, W, 1|3|4), got shape {image.shape}")
    if x.shape[2] == 3:
        return x
    if x.shape[2] == 1:
        return np.repeat(x, 3, axis=2)
    alpha = x[:, :, 3:].astype(np.float32) / 255.0
    mixed = x[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return mixed.clip(0, 255).astype(np.uint8)


def resize_size(height: int, width: int, resolution: float) -> tuple[int, int]:
    """(H, W) ControlNet's `resize_image` gives: short side to `resolution`, each side rounded to a multiple of 64."""
    k = float(resolution) / min(float(height), float(width))
    h = int(np.round(float(height) * k / 64.0)) * 64
    w = int(np.round(float(width) * k / 64.0)) * 64
    if h <= 0 or w <= 0:
        raise InputError(f"resolution {resolution} makes a {height}x{width} image {h}x{w} (sides round to multiples "
                         "of 64): use a resolution of at least 32 per side, e.g. 512")
    return h, w


def _interpolation(enlarging: bool, upscale_method: str | None, default: int) -> int:
    if not enlarging:
        return cv2.INTER_AREA
    return default if upscale_method is None else UPSCALE_METHODS[upscale_method]


def resize_image(image: np.ndarray, resolution: float, upscale_method: str | None = None) -> np.ndarray:
    """ControlNet's `resize_image`: to `resize_size`, Lanczos when enlarging (or `upscale_method`, a cv2
    INTER_* name as comfyui_controlnet_aux takes it), area when shrinking or keeping the size."""
    if upscale_method is not None and upscale_method not in UPSCALE_METHODS:
        raise InputError(f"upscale_method must be one of {', '.join(UPSCALE_METHODS)}, got {upscale_method!r}")
    h0, w0 = image.shape[:2]
    h, w = resize_size(h0, w0, resolution)
    enlarging = float(resolution) / min(float(h0), float(w0)) > 1
    return cv2.resize(image, (w, h), interpolation=_interpolation(enlarging, upscale_method, cv2.INTER_LANCZOS4))


def _as_rgb_array(image: Any) -> np.ndarray:
    """A PIL image or an RGB uint8 array as a uint8 array (PIL palette/CMYK/... images converted to RGB)."""
    if image is None:
        raise InputError("input_image must be an RGB image (PIL image or uint8 numpy array), got None")
    if not isinstance(image, np.ndarray):
        if getattr(image, "mode", "RGB") not in ("RGB", "RGBA", "L") and hasattr(image, "convert"):
            image = image.convert("RGB")
        image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InputError(f"input_image must be uint8 RGB (0-255), got dtype {image.dtype}; "
                         "convert a float image in [0, 1] with (img * 255).clip(0, 255).round().astype(np.uint8)")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)) or 0 in image.shape[:2]:
        raise InputError(f"input_image must be (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) grey, got shape {image.shape}")
    return image


class DwposeDetector:
    """Drop-in for ControlNet's DWPose annotator: `detector(image, detect_resolution=512, image_resolution=512,
    output_type="pil")` returns the conditioning canvas (RGB) as ControlNet's `dwpose` annotator draws it.

    `estimator`: the Estimator to use; by default the models the annotator runs, `Estimator.from_preset(
    "performance", runtime=runtime, ...)`: DWPose-l-384 and YOLOX-L from the official ONNX files (downloaded once
    and verified; no PyTorch), on runtime "auto" (the fastest of this machine within its accuracy gate).
    `detector` replaces YOLOX-L ("hog" or "none", the whole image as one person, work offline).
    """

    def __init__(self, estimator: Estimator | None = None, detector: Any = None, runtime: str = "auto",
                 **estimator_options: Any) -> None:
        if estimator is not None:
            if detector is not None or estimator_options:
                raise InputError("DwposeDetector takes an estimator or the options to build one, not both: give "
                                 "detector/options to your Estimator")
            self.estimator = estimator
        else:
            if detector is not None:
                estimator_options["detector"] = detector
            self.estimator = Estimator.from_preset("performance", runtime=runtime, **estimator_options)

    def __call__(self, input_image: Any, detect_resolution: int = 512, image_resolution: int = 512,
                 output_type: str | None = "pil", include_body: bool = True, include_hand: bool = True,
                 include_face: bool = True, image_and_json: bool = False, upscale_method: str | None = None,
                 hand_and_face: bool | None = None, **kwargs: Any) -> Any:
        """The canvas for an RGB image (PIL or uint8 array): a PIL image (`output_type="pil"`) or an RGB uint8
        array (`"np"`; None: PIL for a PIL input, array for an array, as comfyui_controlnet_aux decides).

        `include_body/hand/face=False` leave that part off the canvas (comfyui_controlnet_aux; `hand_and_face`
        sets both of the last two, as its deprecated option). `upscale_method` None: the annotator's resizing
        (Lanczos/area for the input, linear for the canvas); a cv2 INTER_* name (comfyui_controlnet_aux's
        option, "INTER_CUBIC" there by default): that method wherever an image is enlarged, area where it
        shrinks. `image_and_json=True` returns (canvas, dict) where the dict is one image's ComfyUI
        POSE_KEYPOINT entry with every part (as the DWPose node writes it, whatever include_* says), in
        pixels of the input image. Unknown keyword options are ignored with a warning, as the annotator
        ignores them.
        """
        if kwargs:
            warnings.warn(f"DwposeDetector ignores {', '.join(sorted(kwargs))}", UserWarning, stacklevel=2)
        if output_type is None:
            output_type = "np" if isinstance(input_image, np.ndarray) else "pil"
        if output_type not in OUTPUT_TYPES:
            raise InputError(f"output_type must be 'pil' or 'np', got {output_type!r}")
        if upscale_method is not None and upscale_method not in UPSCALE_METHODS:
            raise InputError(f"upscale_method must be None (the annotator's resizing) or one of "
                             f"{', '.join(UPSCALE_METHODS)}, got {upscale_method!r}")
        if output_type == "pil" and Image is None:
            raise RuntimeUnavailableError("output_type='pil' needs Pillow: pip install pillow (or pass "
                                          "output_type='np')")
        if hand_and_face is not None:
            include_hand = include_face = bool(hand_and_face)
        rgb = _as_rgb_array(input_image)
        bgr = hwc3(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)) if rgb.ndim == 3 and rgb.shape[2] != 1 else hwc3(rgb)
        enlarge_in = float(detect_resolution) / min(bgr.shape[:2]) > 1
        h, w = resize_size(*bgr.shape[:2], detect_resolution)
        work = cv2.resize(bgr, (w, h), interpolation=_interpolation(enlarge_in, upscale_method, cv2.INTER_LANCZOS4))
        result = self.estimator(work)
        points, scores = to_openpose_points(result)
        canvas = draw_openpose_points(points, scores, (h, w), rgb=True, body=include_body, hands=include_hand,
                                      face=include_face)
        out_h, out_w = resize_size(h, w, image_resolution)  # from the detection image, as the annotator does
        enlarge_out = float(image_resolution) / min(h, w) > 1
        canvas = cv2.resize(canvas, (out_w, out_h),
                            interpolation=_interpolation(enlarge_out, upscale_method, cv2.INTER_LINEAR)
                            if upscale_method is not None else cv2.INTER_LINEAR)
        image = Image.fromarray(canvas) if output_type == "pil" else canvas
        if not image_and_json:
            return image
        in_h, in_w = rgb.shape[:2]
        scale = np.array([in_w / w, in_h / h], np.float32)
        in_pixels = PoseResult(result.keypoints * scale, result.scores, result.boxes * np.tile(scale, 2),
                               result.track_ids)
        return image, to_comfyui(in_pixels, (in_h, in_w))
