"""Which COCOeval implementation scores COCO-WholeBody: xtcocotools when it imports, else xthotcoco.

Both give mmpose's numbers (tests/test_evaluate.py compares them stat by stat when both are
installed). xthotcoco installs from abi3 wheels with the `train` extra; the xtcocotools wheel on
PyPI is built against numpy 1 and only imports under numpy 2 when built from source, so it is
used when the user has one that works and never required. This module imports no heavy package:
the CLI calls `require_evaluator()` before any inference so a missing evaluator costs nothing.
"""
from __future__ import annotations

import functools
import importlib
import importlib.metadata
import sys
from dataclasses import dataclass
from typing import Any

from dwpose_edge.errors import InputError, RuntimeUnavailableError

BACKENDS = ("xtcocotools", "xthotcoco")
INSTALL_HINT = 'pip install "dwpose-edge[eval]"'


class EvaluationUnavailable(RuntimeUnavailableError):
    """No COCO-WholeBody evaluator imports (neither xtcocotools nor xthotcoco)."""


@dataclass(frozen=True)
class CocoBackend:
    """One importable evaluator: its `COCO` / `COCOeval` classes, named as in xtcocotools."""

    name: str
    version: str
    COCO: Any
    COCOeval: Any

    def iou_type(self, part: str) -> str:
        """The iouType of a COCO-WholeBody part ('body', 'face', ...)."""
        if part == "body" and self.name == "xthotcoco":  # its plain 'keypoints' is xtcocotools' body
            return "keypoints"
        return f"keypoints_{part}"

    def describe(self) -> str:
        return f"{self.name} {self.version}"


def _import(name: str) -> CocoBackend:
    if name == "xtcocotools":
        coco = importlib.import_module("xtcocotools.coco").COCO
        cocoeval = importlib.import_module("xtcocotools.cocoeval").COCOeval
    elif name == "xthotcoco":
        module = importlib.import_module("xthotcoco")
        coco, cocoeval = module.COCO, module.COCOeval
    else:
        raise InputError(f"unknown evaluator {name!r}; choose one of {', '.join(BACKENDS)}")
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return CocoBackend(name, version, coco, cocoeval)


@functools.lru_cache(maxsize=None)
def load_backend(name: str | None = None) -> CocoBackend:
    """The evaluator called `name`, or with None the first of BACKENDS that imports.

    Raises EvaluationUnavailable (one line: what failed and the install command) when none does.
    """
    if name is not None and name not in BACKENDS:
        raise EvaluationUnavailable(f"unknown COCO-WholeBody evaluator {name!r}; choose one of {', '.join(BACKENDS)}")
    failures = []
    for candidate in (name,) if name else BACKENDS:
        try:
            return _import(candidate)
        except (ImportError, ValueError, AttributeError) as exc:  # a numpy-1 xtcocotools raises ValueError
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            failures.append(f"{candidate}: {first}")
    if name == "xtcocotools" or sys.version_info < (3, 10):  # xthotcoco's wheels need Python >= 3.10
        fix = "install xtcocotools built for your numpy with: pip install --no-binary xtcocotools xtcocotools"
    else:
        fix = f"install xthotcoco with: {INSTALL_HINT}"
    wanted = name or "xtcocotools or xthotcoco, and neither imports"
    raise EvaluationUnavailable(f"COCO-WholeBody evaluation needs {wanted} ({'; '.join(failures)}); {fix}")


def require_evaluator(name: str | None = None) -> str:
    """Check before any work that an evaluator imports; returns its 'name version'."""
    return load_backend(name).describe()


def warn_without_evaluator(consequence: str) -> None:
    """One line on stderr up front when no COCO-WholeBody evaluator imports and a command only loses its AP."""
    try:
        require_evaluator()
    except EvaluationUnavailable as exc:
        print(f"dwpose-edge: note: {exc}; until then {consequence}", file=sys.stderr)


__all__ = ["BACKENDS", "INSTALL_HINT", "CocoBackend", "EvaluationUnavailable", "load_backend", "require_evaluator",
           "warn_without_evaluator"]
