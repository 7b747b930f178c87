"""Tests that run INSIDE a torch-free venv holding `pip install .` (tests/test_lean_venv.py drives them).

Collected only where torch is not importable: in the development venv tests/test_lean_venv.py runs them
in the cached lean venvs instead. Cases (exported folders, expected keypoints) come from the full
environment through the json named by DWPOSE_EDGE_LEAN_CASES.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

if importlib.util.find_spec("torch") is not None:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def cases() -> dict:
    path = os.environ.get("DWPOSE_EDGE_LEAN_CASES")
    if not path:
        pytest.fail("DWPOSE_EDGE_LEAN_CASES is not set: run these through tests/test_lean_venv.py")
    return json.loads(Path(path).read_text())
