"""The embedded default weights shipped inside the package (none yet: see issue 'Embedded default')."""
from __future__ import annotations

from pathlib import Path

from .data import DATA_DIR
from .errors import WeightsError

# model name -> file in dwpose_edge/data
EMBEDDED: dict[str, str] = {}


def default_weights(model: str) -> Path:
    """Path of the embedded checkpoint for `model`, or a WeightsError saying what to pass instead."""
    name = EMBEDDED.get(model)
    if name is None or not (DATA_DIR / name).is_file():
        raise WeightsError(
            f"no embedded weights for {model}: pass weights=<path to an mmpose .pth> or a registry name "
            f"(e.g. weights='{model}', downloaded once), or weights='random' for untrained plumbing tests")
    return DATA_DIR / name
