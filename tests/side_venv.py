"""Shared by the conformance tests that run reference code (mmpose, OpenCV 4) in their own cached venvs."""
from __future__ import annotations

import os


def child_env() -> dict[str, str]:
    """This process's environment without what would make a child python see our venv's packages."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env
