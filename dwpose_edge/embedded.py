"""What ships inside the package so that everything runs offline: the default weights (an mmpose-layout
checkpoint for torch and training, the same weights as a validated ONNX for every other runtime, so that
the default runs without PyTorch) and a small generated validation set (COCO-WholeBody json + JPEGs) for
`make demo`, the benchmark and INT8 calibration."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from .data import DATA_DIR
from .errors import ChecksumError, WeightsError
from .hashing import sha256_file
from .onnx_file import onnx_metadata, vouch

# model name -> (file in dwpose_edge/data, its sha256); written by `python -m dwpose_edge.train.embed`.
# dwpose-t: the TPD student of docs/MODEL_CARD.md (stage 1, distilled from a DWPose-s teacher; both trained
# here on generated data only).
EMBEDDED: dict[str, tuple[str, str]] = {
    "dwpose-t": ("dwpose-t_synth_fp16.pth", "28f834e566aebe954889deabc59a15cc42737ee91e29c0c19328f5499444d9a4"),
}
# model name -> (ONNX file, its sha256): the checkpoint above exported and checked against torch fp32
# (`python -m dwpose_edge.train.embed --onnx-only ... --onnx ...`: 100% of keypoints within 1 px, max logit
# difference 1e-6); its meta travels in the metadata key `dwpose_edge.meta`
EMBEDDED_ONNX: dict[str, tuple[str, str]] = {
    "dwpose-t": ("dwpose-t_synth.onnx", "f35f6f5b2125fa5490552efcd39db7acc47e97e95a0d2ece0e4ea628ff9b2c8f"),
}

# `dwpose-edge make-data --out dwpose_edge/data/val --images 140 --seed 2`: the first 140 images of the
# held-out generated validation set (seed 2), 362 persons; never used for training (seed 1)
VAL_DIR = DATA_DIR / "val"
VAL_DESCRIPTION = ("embedded generated COCO-WholeBody validation set (dwpose_edge/data/val: make-data --seed 2 "
                   "--images 140, 362 persons)")


def default_weights(model: str) -> Path:
    """Path of the embedded checkpoint for `model` after its sha256 check, or a WeightsError saying what
    to pass instead."""
    return _embedded_file(EMBEDDED, model)


def default_onnx(model: str) -> Path:
    """Path of the embedded ONNX of `model` (the default of every non-torch runtime) after its sha256 check
    (the pinned hash is of a file checked and validated when it was made: vouched for, not parsed again)."""
    path = _embedded_file(EMBEDDED_ONNX, model)
    vouch(path)
    return path


def _embedded_file(table: dict[str, tuple[str, str]], model: str) -> Path:
    entry = table.get(model)
    if entry is None:
        embedded = ", ".join(sorted(table)) or "none"
        raise WeightsError(
            f"no embedded weights for {model} (embedded: {embedded}): pass weights=<path to an mmpose .pth or "
            f".onnx> or a registry name (e.g. weights='{model}', downloaded once), or weights='random' for "
            "untrained plumbing tests")
    name, sha256 = entry
    path = DATA_DIR / name
    if not path.is_file():
        raise WeightsError(f"the embedded weights {path} are missing (a broken install?); reinstall dwpose-edge")
    _verify(path, sha256, path.stat().st_mtime_ns, path.stat().st_size)
    return path


@lru_cache(maxsize=None)
def _verify(path: Path, sha256: str, mtime_ns: int, size: int) -> None:
    """sha256 of an embedded file, checked once per process and file version (mtime/size in the cache key)."""
    actual = sha256_file(path)
    if actual != sha256:
        raise ChecksumError(f"the embedded weights {path} have sha256 {actual[:16]}..., expected "
                            f"{sha256[:16]}...: the file was modified or corrupted; reinstall dwpose-edge")


def embedded_meta(model: str) -> dict:
    """The embedded checkpoint's meta: what it is (`note`) and its AP on the embedded validation set
    (`embedded_val_ap`), both written by `python -m dwpose_edge.train.embed` (read from the ONNX copy: no torch)."""
    return json.loads(onnx_metadata(default_onnx(model))["dwpose_edge.meta"])


def embedded_val_set() -> tuple[Path, Path]:
    """(annotation json, image folder) of the embedded validation set."""
    ann, images = VAL_DIR / "annotations.json", VAL_DIR / "images"
    if not ann.is_file() or not images.is_dir():
        raise WeightsError(f"the embedded validation set is missing from {VAL_DIR} (a broken install?); "
                           "reinstall dwpose-edge or regenerate it with `dwpose-edge make-data --out "
                           f"{VAL_DIR} --images 140 --seed 2`")
    return ann, images
