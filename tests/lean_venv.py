"""Cached torch-free venvs with the package installed the way a device installs it (`pip install .` of a
clean copy of this tree, core or core + runtime extras), for tests/test_lean_venv.py.

The venv's dependencies are installed once per pyproject.toml version and extras; the package itself is
rebuilt from a clean copy (`git ls-files`: no stale build/ folder can leak into the wheel) whenever one of
its files changes. Env: DWPOSE_EDGE_LEAN_VENVS (root folder; default ~/.cache/dwpose_edge/lean-venvs).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from side_venv import child_env

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = ("dwpose_edge", "runtimes", "export", "train", "bench")


def _tree_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "--", "pyproject.toml", "README.md",
                          *PACKAGE_DIRS], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return sorted(p for p in out.splitlines() if (ROOT / p).is_file())


def clean_copy(dest: Path, files: list[str] | None = None) -> Path:
    """The package's files as git sees them (tracked + untracked, not ignored) copied into `dest`: what a clean
    checkout builds, with no stale build/ folder to leak into a wheel."""
    for rel in _tree_files() if files is None else files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    return dest


def _tree_key(files: list[str]) -> str:
    h = hashlib.sha256()
    for rel in files:
        st = (ROOT / rel).stat()
        h.update(f"{rel}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _run(cmd: list[str], what: str, timeout: int = 1800) -> None:
    proc = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (rc {proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-4000:]}")


def lean_python(extras: str = "") -> Path:
    """Python of a torch-free venv holding `pip install .[extras]` of this tree (+ pytest), built on first use."""
    root = Path(os.environ.get("DWPOSE_EDGE_LEAN_VENVS", Path.home() / ".cache" / "dwpose_edge" / "lean-venvs"))
    deps_key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + f"|{extras}|{sys.version}".encode())
    venv = root / f"{extras or 'core'}-{deps_key.hexdigest()[:12]}"
    python = venv / "bin" / "python"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time (parallel sessions share the cache)
        files = _tree_files()
        key = _tree_key(files)
        stamp = venv / ".package-key"
        if stamp.is_file() and stamp.read_text() == key and python.is_file():
            return python
        with tempfile.TemporaryDirectory() as tmp:
            src = clean_copy(Path(tmp) / "src", files)
            spec = f"{src}[{extras}]" if extras else str(src)
            if not python.is_file():
                shutil.rmtree(venv, ignore_errors=True)
                _run([sys.executable, "-m", "venv", str(venv)], "creating the lean venv")
                _run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], "upgrading pip")
                _run([str(python), "-m", "pip", "install", "-q", spec, "pytest>=7.4"], f"pip install {spec}")
            else:
                _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(src)],
                     "reinstalling the package")
        for stale in root.iterdir():  # venvs of older pyproject versions (hundreds of MB each)
            if stale.is_dir() and stale.name.startswith(f"{extras or 'core'}-") and stale != venv:
                shutil.rmtree(stale, ignore_errors=True)
        stamp.write_text(key)
    return python


def distribution_closure_bytes(python: Path, dist: str = "dwpose-edge") -> tuple[int, list[str]]:
    """Installed size of `dist` and every distribution it requires (transitively, markers evaluated), from their
    RECORD files: what `pip install .` brings, without pip/setuptools/pytest."""
    code = r'''
import importlib.metadata as m, json, os, re, sys
from packaging.requirements import Requirement
seen, todo, total = set(), [sys.argv[1]], 0
while todo:
    name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
    if name in seen:
        continue
    seen.add(name)
    d = m.distribution(name)
    for f in d.files or []:
        p = f.locate()
        if os.path.isfile(p):
            total += os.path.getsize(p)
    for r in d.requires or []:
        req = Requirement(r)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            todo.append(req.name)
print(json.dumps([total, sorted(seen)]))
'''
    out = subprocess.run([str(python), "-c", code, dist], env=child_env(), capture_output=True, text=True,
                         check=True).stdout
    import json

    total, names = json.loads(out)
    return int(total), names
