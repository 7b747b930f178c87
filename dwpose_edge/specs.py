"""Model variants and the constants their weights were trained with (mmpose 1.x DWPose configs)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError  # a ValueError too

# mmpose PoseDataPreprocessor, applied after BGR->RGB.
MEAN_RGB = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD_RGB = np.array([58.395, 57.12, 57.375], dtype=np.float32)
BBOX_PADDING = 1.25
SIMCC_SPLIT_RATIO = 2.0
NUM_KEYPOINTS = 133

# Keypoint index ranges of the COCO-WholeBody layout.
PARTS: dict[str, tuple[int, int]] = {
    "body": (0, 17),
    "feet": (17, 23),
    "face": (23, 91),
    "left_hand": (91, 112),
    "right_hand": (112, 133),
}


@dataclass(frozen=True)
class ModelSpec:
    """One DWPose variant: CSPNeXt scaling, head width and input geometry."""

    name: str
    deepen_factor: float
    widen_factor: float
    head_in_channels: int
    input_size: tuple[int, int]  # (W, H), mmpose's order
    sigma: tuple[float, float]
    mmpose_config: str

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.input_size[1], self.input_size[0]

    @property
    def simcc_bins(self) -> tuple[int, int]:
        """Number of SimCC bins along x and y."""
        return (int(self.input_size[0] * SIMCC_SPLIT_RATIO), int(self.input_size[1] * SIMCC_SPLIT_RATIO))


MODEL_SPECS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        ModelSpec("dwpose-t", 0.167, 0.375, 384, (192, 256), (4.9, 5.66),
                  "rtmpose-t_8xb64-270e_coco-ubody-wholebody-256x192"),
        ModelSpec("dwpose-s", 0.33, 0.5, 512, (192, 256), (4.9, 5.66),
                  "rtmpose-s_8xb64-270e_coco-ubody-wholebody-256x192"),
        ModelSpec("dwpose-m", 0.67, 0.75, 768, (192, 256), (4.9, 5.66),
                  "rtmpose-m_8xb64-270e_coco-ubody-wholebody-256x192"),
        ModelSpec("dwpose-l", 1.0, 1.0, 1024, (192, 256), (4.9, 5.66),
                  "rtmpose-l_8xb64-270e_coco-ubody-wholebody-256x192"),
        ModelSpec("dwpose-l-384", 1.0, 1.0, 1024, (288, 384), (6.0, 6.93),
                  "rtmpose-l_8xb32-270e_coco-ubody-wholebody-384x288"),
    )
}


# RTMW whole-body models (mmpose cocktail14 configs; same 133 keypoints, SimCC split 2.0, mean/std and
# padding): OpenMMLab ships them as ONNX (SDK zips); their RTMWHead has no PyTorch twin here, so they run
# from those files only, on the ONNX runtimes. Names follow the architecture: the zip
# rtmw-dw-l-m_..._256x192 holds RTMW-m (distilled from RTMW-l), rtmw-dw-x-l_... RTMW-l (from RTMW-x).
RTMW_SPECS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        ModelSpec("rtmw-m-256x192", 0.67, 0.75, 768, (192, 256), (4.9, 5.66),
                  "rtmw-m_8xb1024-270e_cocktail14-256x192"),
        ModelSpec("rtmw-l-256x192", 1.0, 1.0, 1024, (192, 256), (4.9, 5.66),
                  "rtmw-l_8xb1024-270e_cocktail14-256x192"),
        ModelSpec("rtmw-l-384x288", 1.0, 1.0, 1024, (288, 384), (6.0, 6.93),
                  "rtmw-l_8xb320-270e_cocktail14-384x288"),
    )
}


def get_spec(name: str) -> ModelSpec:
    """Return the spec of a DWPose variant (built in PyTorch here), with an error listing the valid names."""
    try:
        return MODEL_SPECS[name]
    except KeyError:
        if name in RTMW_SPECS:
            raise InputError(f"{name} runs from its ONNX only (OpenMMLab's SDK zip, registry name {name!r}, or an "
                             "end2end.onnx) on runtime onnxruntime or openvino: there is no PyTorch model, export "
                             "or training for it here") from None
        raise InputError(f"unknown model {name!r}; choose one of {sorted(MODEL_SPECS)} "
                         f"(or, from ONNX only, {sorted(RTMW_SPECS)})") from None


def pose_spec(name: str) -> ModelSpec:
    """The spec of any pose model this package runs: a DWPose variant or an ONNX-only RTMW model."""
    if name in RTMW_SPECS:
        return RTMW_SPECS[name]
    return get_spec(name)


def _flip_indices() -> np.ndarray:
    """Index map of COCO-WholeBody's left/right flip pairs (mmpose coco_wholebody metainfo)."""
    idx = np.arange(NUM_KEYPOINTS)

    def swap(a: list[int], b: list[int]) -> None:
        idx[a], idx[b] = b, a

    # body: eyes, ears, shoulders, elbows, wrists, hips, knees, ankles
    swap([1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16])
    swap([17, 18, 19], [20, 21, 22])  # feet: big toe, small toe, heel
    # face (68-point iBUG layout, offset 23)
    f = 23
    jaw = list(range(0, 8))
    face_l = jaw + [17, 18, 19, 20, 21, 36, 37, 38, 39, 40, 41, 31, 32, 48, 49, 50, 58, 59, 60, 61, 67]
    face_r = [16 - j for j in jaw] + [26, 25, 24, 23, 22, 45, 44, 43, 42, 47, 46, 35, 34, 54, 53, 52, 56, 55, 64, 63, 65]
    swap([f + i for i in face_l], [f + i for i in face_r])
    swap(list(range(91, 112)), list(range(112, 133)))  # left hand <-> right hand
    return idx


FLIP_INDICES: np.ndarray = _flip_indices()
