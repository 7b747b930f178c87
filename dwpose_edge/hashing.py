"""The one file hash of the package: sha256 of weights, exports, calibration data and the embedded files."""
from __future__ import annotations

import hashlib
import os

from .errors import InputError

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (the file is never unpickled or loaded whole)."""
    if not isinstance(path, (str, os.PathLike)):  # open(3) would read, then close, file descriptor 3
        raise InputError(f"expected a file path, got {type(path).__name__}")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()
