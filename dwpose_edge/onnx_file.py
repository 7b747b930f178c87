"""Checks of an ONNX model file before any runtime sees it (corrupt, wrong kind, NaN weights): runtimes and
detectors need them without the exporter.

`onnx` is imported on first check, not with the package: it costs ~0.45 s (its ml_dtypes 0.7 dependency alone),
more than the rest of a cold start. So a file is checked once per process (`ensure_checked`), the embedded
default is vouched for by its pinned sha256 (checked when it was made), and a file whose sha256 the caller
verified (an export folder's manifest; a user's .onnx, hashed by `pose_onnx`) is checked once per machine and
package version: its sha256 is recorded in the cache (`checked_onnx/`, with what the checks found) after it
passes, and later processes trust a file with that hash without parsing it. A file new to this machine,
whatever a manifest says of it, is checked in full.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from dwpose_edge.errors import ModelFileError
from dwpose_edge.hashing import sha256_file
from dwpose_edge.version import __version__
from dwpose_edge.weights import cache_dir, cached_sha256

if TYPE_CHECKING:
    import onnx

# (resolved path, inode, size, mtime_ns, ctime_ns, n_outputs) of files checked or vouched for in this process
_CHECKED: set[tuple] = set()


def _key(path: Path, n_outputs: int) -> tuple:
    st = path.stat()
    return os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, n_outputs


def vouch(path: str | os.PathLike, n_outputs: int = 2) -> None:
    """Record `path` as checked: call only after its bytes matched the sha256 of a file that passed the checks."""
    _CHECKED.add(_key(Path(path), n_outputs))


def ensure_checked(path: str | os.PathLike, n_outputs: int = 2, contract: str | None = None,
                   sha256: str | None = None) -> None:
    """`check_onnx_file` unless this file (same path, inode, size, times) was checked or vouched for in this
    process, or `sha256` (the file's hash, verified by the caller) passed the check before on this machine."""
    path = Path(path)
    if path.is_file() and _key(path, n_outputs) in _CHECKED:
        return
    if sha256 is None:
        check_onnx_file(path, n_outputs, contract)
    else:
        checked_facts(path, f"outputs{int(n_outputs)}", lambda proto: {}, n_outputs, contract, sha256)


def checked_facts(path: str | os.PathLike, kind: str, inspect: Callable[[onnx.ModelProto], dict],
                  n_outputs: int = 2, contract: str | None = None, sha256: str | None = None) -> dict:
    """What `inspect` (which may raise ModelFileError) finds in the checked ONNX file at `path`: from the cache
    when a file with the same sha256 passed `check_onnx_file` and `inspect` before (`kind` names the inspection),
    else by loading `onnx` and parsing the file, then recorded. `sha256`: the file's hash if the caller verified
    it already, else it is computed here (~0.6 ms per MB)."""
    path = Path(path)
    if not path.is_file():
        check_onnx_file(path, n_outputs, contract)  # names the problem: a folder, a missing file
    sha256 = sha256 or cached_sha256(path) or sha256_file(path)
    known = recall(sha256, kind)
    if known is not None:
        vouch(path, n_outputs)
        return known
    facts = inspect(check_onnx_file(path, n_outputs, contract))
    remember(sha256, kind, facts)
    return facts


def recall(sha256: str, kind: str) -> dict | None:
    """What `remember` recorded for a file with this sha256 passing the `kind` checks, if this package version
    recorded it (another version may check differently), else None."""
    try:
        doc = json.loads(_record(sha256, kind).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("version") == __version__ else None


def remember(sha256: str, kind: str, facts: dict) -> None:
    """Record in the cache that a file with this sha256 passed the `kind` checks, with what they found."""
    record = _record(sha256, kind)
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f"{record.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({**facts, "version": __version__}))
        os.replace(tmp, record)
    except OSError:  # a read-only cache: the file is simply checked again next time
        pass


def _record(sha256: str, kind: str) -> Path:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ModelFileError(f"not a sha256 hex digest: {sha256!r}")
    return cache_dir() / "checked_onnx" / f"{sha256}_{kind}.json"


def check_onnx_file(path: str | os.PathLike, n_outputs: int = 2, contract: str | None = None) -> onnx.ModelProto:
    """Load and check an ONNX file before any runtime sees it; ModelFileError if corrupt or of the wrong kind
    (one input and `n_outputs` outputs: 2 for a SimCC pose model, 1 for a YOLOX detector; `contract` words
    the expectation in the error instead)."""
    import onnx  # ~0.45 s: only when a file is really checked (module doc)

    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not an ONNX file; for a folder written by `dwpose-edge export` "
                             "pass it as model_dir")
    if not path.is_file():
        raise ModelFileError(f"ONNX file not found: {path}")
    if path.stat().st_size == 0:
        raise ModelFileError(f"ONNX file is empty: {path}")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise ModelFileError(f"{path} is not a valid ONNX model (truncated or corrupt?): "
                             f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    inputs = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    if len(inputs) != 1 or len(proto.graph.output) != n_outputs:
        what = contract or ("a DWPose/RTMPose model has one input and two outputs (simcc_x, simcc_y)"
                            if n_outputs == 2 else f"expected one input and {n_outputs} output(s)")
        raise ModelFileError(f"{path} has {len(inputs)} inputs and {len(proto.graph.output)} outputs; {what}")
    bad = _non_finite_initializers(proto)
    if bad:
        raise ModelFileError(f"{path} has NaN/inf weights in {bad[:5]}: the file is corrupt; re-export or "
                             "re-download it")
    _CHECKED.add(_key(path, n_outputs))
    return proto


def _non_finite_initializers(proto) -> list[str]:
    """Names of floating-point initializers holding NaN or inf (external data is not loaded here)."""
    from onnx import TensorProto, numpy_helper

    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}
    bad = []
    for init in proto.graph.initializer:
        if init.data_type in floats and init.data_location != TensorProto.EXTERNAL:
            values = numpy_helper.to_array(init)
            if not np.isfinite(values.astype(np.float32, copy=False)).all():
                bad.append(init.name)
    return bad


def onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata_props of an ONNX file (key -> value), without loading external data."""
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def is_onnx_path(weights: object) -> bool:
    """True when `weights` names an .onnx file (by its suffix; the file itself is checked on load)."""
    return isinstance(weights, (str, os.PathLike)) and os.fspath(weights).lower().endswith(".onnx")
