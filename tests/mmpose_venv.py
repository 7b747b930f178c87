"""The real mmpose 1.3.2 / mmengine 0.10.7 venv (tests/mmpose_ref/make_venv.sh), shared by the tests
that compare against it or write reference files with it. Import the `mmpose_python` fixture by name.

Env: DWPOSE_EDGE_MMPOSE_VENV (venv path), DWPOSE_EDGE_REQUIRE_CONFORMANCE=1 or CI=true turn an
unreachable package index into a failure instead of a skip.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from side_venv import child_env

REF_DIR = Path(__file__).parent / "mmpose_ref"
MAKE_VENV = REF_DIR / "make_venv.sh"


def require_env() -> bool:
    return os.environ.get("DWPOSE_EDGE_REQUIRE_CONFORMANCE") == "1" or os.environ.get("CI", "").lower() in (
        "1", "true", "yes")


def venv_dir() -> Path:
    default = Path.home() / ".cache" / "dwpose_edge" / "mmpose-venv"
    return Path(os.environ.get("DWPOSE_EDGE_MMPOSE_VENV", default))


@pytest.fixture(scope="session")
def mmpose_python() -> str:
    """Path of the python in the mmpose 1.3.2 venv (built on first use, then cached)."""
    if shutil.which("bash") is None:
        pytest.skip("conformance venv needs bash (tests/mmpose_ref/make_venv.sh)")
    env = child_env()
    env["DWPOSE_EDGE_MMPOSE_VENV"] = str(venv_dir())
    env.setdefault("DWPOSE_EDGE_MMPOSE_PYTHON", sys.executable)
    # Same torch as this environment (logits bit-identical), but NOT our OpenCV: the venv keeps the
    # OpenCV 4.x that mmpose users run (make_venv.sh's default), so equal crops prove fidelity.
    import torch

    env.setdefault("DWPOSE_EDGE_MMPOSE_TORCH", "torch==" + torch.__version__.split("+")[0])
    proc = subprocess.run(["bash", str(MAKE_VENV)], env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode == 3 and not require_env():
        pytest.skip("mmpose 1.3.2 venv cannot be built: the package index is unreachable "
                    f"({proc.stderr.strip().splitlines()[-1]}); set CI=true to make this a failure")
    if proc.returncode != 0:
        pytest.fail(f"tests/mmpose_ref/make_venv.sh failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


def cached_output(mmpose_python: str, script: Path, args: list[str], inputs: list[Path], extra: str,
                  folder: str) -> Path:
    """Run `script --out DIR *args` in the mmpose venv once per version of its inputs and return DIR.

    DIR is ``<cache>/<folder>/<key>``, key = sha256 of the `inputs` files, the venv's stamp and `extra`;
    written into a temporary folder first and renamed, so a failed or parallel run never leaves a half
    folder; older keys are deleted (hundreds of MB each).
    """
    import hashlib
    import tempfile

    h = hashlib.sha256()
    for path in inputs:
        h.update(path.read_bytes())
    stamp = Path(mmpose_python).parent.parent / ".dwpose_edge_ready"
    h.update(stamp.read_bytes() if stamp.exists() else b"")
    h.update(extra.encode())
    key = h.hexdigest()[:16]
    root = venv_dir().parent / folder
    out = root / key
    if not (out / "info.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
        proc = subprocess.run([mmpose_python, str(script), "--out", str(tmp), *args], env=child_env(),
                              capture_output=True, text=True, timeout=1200)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            pytest.fail(f"{script.name} failed (rc {proc.returncode}):\n{proc.stderr[-6000:]}")
        try:
            tmp.rename(out)
        except OSError:  # a parallel session won the race; use its output
            shutil.rmtree(tmp, ignore_errors=True)
        for stale in root.iterdir():
            if stale.name != key and not stale.name.startswith("."):
                shutil.rmtree(stale, ignore_errors=True)
    return out
