"""The one export cache: `weights` exported, validated (int8: calibrated and gated) for one runtime x precision,
once per weights file, package version and calibration data. The Estimator's export-on-first-use and the
benchmark both read and fill it."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from dwpose_edge.embedded import default_onnx, embedded_val_set
from dwpose_edge.errors import ExportError
from dwpose_edge.export.calibration import calibration_key
from dwpose_edge.hashing import sha256_file
from dwpose_edge.manifest import MANIFEST
from dwpose_edge.onnx_file import is_onnx_path
from dwpose_edge.runtimes.base import require
from dwpose_edge.version import __version__
from dwpose_edge.weights import cache_dir, resolve_weights


def export_source(model: str, weights: Any) -> Any:
    """What an export of `weights` starts from: None -> the embedded ONNX (no torch needed), an .onnx path as
    given, 'random' or a state dict as given, else the checkpoint file (a registry name is downloaded)."""
    if weights is None:
        return default_onnx(model)
    if is_onnx_path(weights) or not isinstance(weights, (str, os.PathLike)):
        return weights
    if weights == "random":
        return weights
    return resolve_weights(weights)


def export_cache_folder(model: str, source: Any, runtime: str, precision: str, calib: Any = None,
                        calib_images: str | os.PathLike | None = None, allow_accuracy_loss: bool = False) -> Path:
    """The cache folder of `source` (from `export_source`) exported for `runtime`/`precision`.

    Keyed by the source file's sha256 (or 'random') and the package version; int8 folders also by the
    calibration data (None = the embedded validation set); an export allowed to fail the int8 gate (the
    benchmark's, which measures the loss) never shares a folder with a gated one."""
    key = "random" if isinstance(source, str) and source == "random" else sha256_file(source)
    tag = hashlib.sha256(f"{key}|{__version__}".encode()).hexdigest()[:16]
    name = f"{model}_{tag}_{runtime}_{precision}"
    if precision == "int8":
        if calib is None:
            calib, calib_images = embedded_val_set()
        name += f"_calib{calibration_key(calib, calib_images)}"
        if allow_accuracy_loss:
            name += "_ungated"
    return cache_dir() / "exports" / name


def cached_export(model: str, weights: Any, runtime: str, precision: str, *, threads: int | None = None,
                  calib: Any = None, calib_images: str | os.PathLike | None = None,
                  allow_accuracy_loss: bool = False) -> Path:
    """The folder holding `weights` exported for `runtime`/`precision` (written and validated on first use)."""
    source = export_source(model, weights)
    if not is_onnx_path(source):
        require("torch", "dwpose-edge[export]")  # a checkpoint is exported through torch; an ONNX is not
    if isinstance(source, dict):
        raise ExportError("a state dict cannot be cached (no file to key it by): save it as a .pth first, or "
                          "export it with dwpose_edge.export.pipeline.export_model")
    folder = export_cache_folder(model, source, runtime, precision, calib, calib_images, allow_accuracy_loss)
    if not (folder / MANIFEST).is_file():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot create the export cache folder {folder}: {exc}; set DWPOSE_EDGE_CACHE "
                              "to a writable folder") from exc
        target = {"onnxruntime": "onnx"}.get(runtime, runtime)
        from dwpose_edge.export.pipeline import export_model  # loads onnx (~0.45 s): only when exporting

        export_model(model, source, folder, targets=[target], precisions=[precision], threads=threads,
                     log=lambda msg: None, calib=calib, calib_images=calib_images,
                     allow_accuracy_loss=allow_accuracy_loss)
    return folder
