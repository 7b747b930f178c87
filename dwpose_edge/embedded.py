"""What ships inside the package so that everything runs offline: the default weights and a small
generated validation set (COCO-WholeBody json + JPEGs) for `make demo`, the benchmark and INT8 calibration."""
from __future__ import annotations

from pathlib import Path

from .data import DATA_DIR
from .errors import WeightsError

# model name -> file in dwpose_edge/data
EMBEDDED: dict[str, str] = {}

# `dwpose-edge make-data --out dwpose_edge/data/val --images 140 --seed 2`: the first 140 images of the
# held-out generated validation set (seed 2), 362 persons; never used for training (seed 1)
VAL_DIR = DATA_DIR / "val"
VAL_DESCRIPTION = ("embedded generated COCO-WholeBody validation set (dwpose_edge/data/val: make-data --seed 2 "
                   "--images 140, 362 persons)")


def default_weights(model: str) -> Path:
    """Path of the embedded checkpoint for `model`, or a WeightsError saying what to pass instead."""
    name = EMBEDDED.get(model)
    if name is None or not (DATA_DIR / name).is_file():
        raise WeightsError(
            f"no embedded weights for {model}: pass weights=<path to an mmpose .pth> or a registry name "
            f"(e.g. weights='{model}', downloaded once), or weights='random' for untrained plumbing tests")
    return DATA_DIR / name


def embedded_val_set() -> tuple[Path, Path]:
    """(annotation json, image folder) of the embedded validation set."""
    ann, images = VAL_DIR / "annotations.json", VAL_DIR / "images"
    if not ann.is_file() or not images.is_dir():
        raise WeightsError(f"the embedded validation set is missing from {VAL_DIR} (a broken install?); "
                           "reinstall dwpose-edge or regenerate it with `dwpose-edge make-data --out "
                           f"{VAL_DIR} --images 140 --seed 2`")
    return ann, images
