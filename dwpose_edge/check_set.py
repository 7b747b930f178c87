"""The device check set an export folder carries: validation crops and what the reference and each artifact gave
on them on the machine that exported it, so any device can re-run every artifact's gate without torch.

Stored as `device_check.npz` (numpy arrays only, read with allow_pickle=False), its sha256 in the manifest:
- `crops`: (N, H, W, 3) uint8 BGR crops as `crop_boxes` warps them (exact; normalised at check time the same way);
- `reference`: (N, K, 2) float32 keypoint locations in crop pixels of the export's reference (torch fp32, or
  onnxruntime fp32 for an ONNX source);
- `artifact__<runtime>__<precision>`: (N, K, 2) what that artifact gave on the exporting machine.
"""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ModelFileError
from .preprocess import normalize

CHECK_SET = "device_check.npz"
_PREFIX = "artifact__"


def artifact_key(runtime: str, precision: str) -> str:
    return f"{_PREFIX}{runtime}__{precision}"


@dataclass
class CheckSet:
    """Crops (uint8 BGR) and keypoint locations of the reference and of each artifact on the exporting machine."""

    crops: np.ndarray
    reference: np.ndarray
    exported: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def batch(self) -> np.ndarray:
        """(N, 3, H, W) float32, normalised exactly as inference normalises a crop."""
        return normalize(self.crops)


def write_check_set(path: str | os.PathLike, crops_u8: np.ndarray, reference: np.ndarray,
                    exported: dict[tuple[str, str], np.ndarray]) -> Path:
    """Write the check set (compressed) and return its path."""
    arrays = {"crops": np.ascontiguousarray(crops_u8, np.uint8), "reference": np.asarray(reference, np.float32)}
    for (runtime, precision), locs in exported.items():
        arrays[artifact_key(runtime, precision)] = np.asarray(locs, np.float32)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)
    return path


def read_check_set(path: str | os.PathLike, sha256: str | None, input_size: tuple[int, int]) -> CheckSet:
    """Read and verify a check set: its sha256 (from the manifest), then every array's dtype and shape;
    ModelFileError naming the problem otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path} listed in the manifest is missing; export the folder again")
    if sha256 is None:
        raise ModelFileError(f"the manifest records no sha256 for {path.name}; export the folder again")
    try:
        data = path.read_bytes()  # hashed and parsed from the same bytes: what was verified is what is read
    except OSError as exc:
        raise ModelFileError(f"cannot read {path} ({exc}); re-export the folder") from exc
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise ModelFileError(f"{path} does not match its sha256 in the manifest (expected {sha256}, got {got}): the "
                             "file was modified or corrupted; re-export the folder")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{path} is not a readable check set ({type(exc).__name__}: {exc}); "
                             "re-export the folder") from exc
    w, h = input_size
    crops, ref = arrays.get("crops"), arrays.get("reference")
    if crops is None or crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[1:] != (h, w, 3) or not len(crops):
        raise ModelFileError(f"{path}: 'crops' must be (N, {h}, {w}, 3) uint8, got "
                             f"{None if crops is None else (crops.shape, str(crops.dtype))}; re-export the folder")
    n = len(crops)

    def locs(name: str) -> np.ndarray:
        a = arrays[name]
        if a.dtype != np.float32 or a.ndim != 3 or a.shape[0] != n or a.shape[2] != 2 or not np.isfinite(a).all():
            raise ModelFileError(f"{path}: {name!r} must be ({n}, K, 2) finite float32, got {a.shape} {a.dtype}; "
                                 "re-export the folder")
        return a

    if ref is None:
        raise ModelFileError(f"{path} holds no 'reference' locations; re-export the folder")
    exported = {}
    for name in arrays:
        if name.startswith(_PREFIX):
            runtime, _, precision = name[len(_PREFIX):].partition("__")
            exported[runtime, precision] = locs(name)
            if exported[runtime, precision].shape != ref.shape:
                raise ModelFileError(f"{path}: {name!r} has shape {exported[runtime, precision].shape}, the reference "
                                     f"{ref.shape}; re-export the folder")
    return CheckSet(crops, locs("reference"), exported)
