"""The one export cache: `weights` exported, validated (int8: calibrated and gated) for one runtime x precision,
once per weights file, package version and calibration data. The Estimator's export-on-first-use and the
benchmark both read and fill it."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dwpose_edge.embedded import default_onnx, embedded_val_set
from dwpose_edge.errors import DwposeEdgeError, ExportError
from dwpose_edge.export.calibration import calibration_key
from dwpose_edge.hashing import sha256_file
from dwpose_edge.manifest import MANIFEST, read_manifest
from dwpose_edge.onnx_file import is_onnx_path
from dwpose_edge.runtimes.base import require
from dwpose_edge.version import __version__
from dwpose_edge.weights import cache_dir, resolve_weights

PARTIAL = ".partial"  # suffix of a folder an export is still writing (or was killed writing)


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
    if (folder / MANIFEST).is_file():
        with contextlib.suppress(OSError):
            os.utime(folder)  # last use, for `dwpose-edge cache --prune --unused-days N`
        return folder
    # written into a staging folder and renamed when complete: a failed export leaves nothing behind, and of two
    # processes exporting the same folder at once the first to finish wins
    staging = folder.with_name(f".{folder.name}.{os.getpid()}.{threading.get_ident()}{PARTIAL}")
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise ExportError(f"cannot create the export cache folder {staging}: {exc}; set DWPOSE_EDGE_CACHE "
                          "to a writable folder") from exc
    try:
        from dwpose_edge.export.pipeline import export_model  # loads onnx (~0.45 s): only when exporting

        export_model(model, source, staging, targets=[{"onnxruntime": "onnx"}.get(runtime, runtime)],
                     precisions=[precision], threads=threads, log=lambda msg: None, calib=calib,
                     calib_images=calib_images, allow_accuracy_loss=allow_accuracy_loss)
        if folder.is_dir() and not (folder / MANIFEST).is_file():
            shutil.rmtree(folder, ignore_errors=True)  # an unfinished folder of an older version of this code
        try:
            os.rename(staging, folder)
        except OSError:
            if not (folder / MANIFEST).is_file():  # not another process's finished export: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


@dataclass(frozen=True)
class CacheEntry:
    """One folder of the export cache and what it holds."""

    path: Path
    bytes: int
    mtime: float  # last written, or opened from the cache
    status: str  # 'ok', 'incomplete' (no manifest), 'partial' (an export in progress or killed), 'other version'
    model: str = ""
    artifacts: tuple[str, ...] = ()  # 'runtime/precision'

    @property
    def stale(self) -> bool:
        """Never opened again by this package version: an unfinished folder or another version's export."""
        return self.status != "ok"


def export_cache_entries() -> list[CacheEntry]:
    """Every folder of the export cache (`<cache dir>/exports`), oldest first."""
    root = cache_dir() / "exports"
    if not root.is_dir():
        return []
    entries = []
    for path in sorted((p for p in root.iterdir() if p.is_dir()), key=_mtime):
        try:
            size, mtime = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()), path.stat().st_mtime
        except FileNotFoundError:  # removed meanwhile (another process's prune or rename)
            continue
        if path.name.endswith(PARTIAL):
            entries.append(CacheEntry(path, size, mtime, "partial"))
            continue
        try:
            manifest = read_manifest(path)
        except DwposeEdgeError:
            entries.append(CacheEntry(path, size, mtime, "incomplete"))
            continue
        version = (manifest.info.get("versions") or {}).get("dwpose-edge")
        entries.append(CacheEntry(path, size, mtime, "ok" if version == __version__ else "other version",
                                  manifest.model, tuple(f"{a.runtime}/{a.precision}" for a in manifest.artifacts)))
    return entries


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def prune_export_cache(unused_days: float | None = None, everything: bool = False,
                       partial_age_s: float = 86400.0) -> list[CacheEntry]:
    """Delete the stale folders, those unused for `unused_days` (last written or opened from the cache), or
    `everything`; return what was deleted. A staging folder is left alone for `partial_age_s` after its last
    write, in case its export is still running (unless `everything`)."""
    removed = []
    now = time.time()
    for entry in export_cache_entries():
        idle = now - entry.mtime
        if entry.status == "partial" and not everything and idle < partial_age_s:
            continue
        if everything or entry.stale or (unused_days is not None and idle > unused_days * 86400.0):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry)
    return removed
