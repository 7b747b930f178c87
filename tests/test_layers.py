"""The house: rooms depend downward only, imports sit at module top except those of optional backends, and
what a device runs (runtimes, detectors, the Estimator, the CLI's start) never loads torch.

Read from the source with `ast`, so a new upward or in-function import fails here with its file and line."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from side_venv import child_env

ROOT = Path(__file__).resolve().parent.parent
# folder on disk -> package it installs as (pyproject's package-dir)
FOLDERS = {"dwpose_edge": "dwpose_edge", "runtimes": "dwpose_edge.runtimes", "export": "dwpose_edge.export",
           "train": "dwpose_edge.train", "bench": "dwpose_edge.bench"}
# rooms, lowest first: a module may import its own room and the rooms below it, never above
BASE = {"errors", "version", "specs", "hashing", "manifest", "weights", "embedded", "onnx_file", "sdk_zip",
        "sdk_pipeline", "preprocess", "postprocess", "result", "draw", "openpose", "pose_json", "skeleton", "data",
        "check_set"}
ROOMS = ["base", "runtimes", "detectors", "models", "evaluation", "export", "api", "train", "bench", "cli"]
# packages a module may import inside a function: optional backends, heavy or absent on devices. onnx is a core
# dependency but ~0.45 s to import (ml_dtypes 0.7): loaded when a file is really checked or exported, never for
# the embedded default or an export folder (test_running_path_loads_no_onnx)
OPTIONAL = {"torch", "torchvision", "openvino", "ncnn", "nncf", "pnnx", "onnxsim", "matplotlib", "xtcocotools",
            "xthotcoco", "scipy", "yaml", "psutil", "pytest", "rtmlib", "onnxscript", "controlnet_aux",
            "onnxruntime.quantization", "onnx"}  # onnxruntime's quantization tools: export time only, slow


def room_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "dwpose_edge":
        raise ValueError(module)
    if len(parts) == 1:
        return "api"  # dwpose_edge/__init__: the public face (Estimator, PoseResult)
    head = parts[1]
    if head in BASE:
        return "base"
    if head in ("runtimes", "detectors", "models", "evaluation", "export", "train", "bench", "cli"):
        return head
    return "api"  # estimator, predict, demo, tracking, video, ...


def _modules() -> list[tuple[str, Path]]:
    out = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if any(p.startswith("test_") or p == "conftest" for p in parts):
                continue  # pytest files of bench/ are not modules of the package
            out.append((".".join([package, *parts]), path))
    return out


def _imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module top?) of every import in the file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    for node in tree.body:  # `if TYPE_CHECKING:` / try-blocks at top level count as top
        if isinstance(node, (ast.If, ast.Try)):
            top |= {id(n) for n in ast.walk(node)}
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("dwpose_edge") and not node.module and node.level:
                out += [(f"{name}.{a.name}", node.lineno, id(node) in top) for a in node.names]
            else:
                out.append((name, node.lineno, id(node) in top))
    return out


MODULES = _modules()
IMPORTS = {module: _imports(module, path) for module, path in MODULES}
PATHS = dict(MODULES)


def _needs(packages: set[str]) -> set[str]:
    """Modules that import one of `packages` at their top, directly or through another such module (fixed point)."""
    needs = {m for m, imps in IMPORTS.items() if any(n.split(".")[0] in packages and top for n, _, top in imps)}
    changed = True
    while changed:
        changed = False
        for m, imps in IMPORTS.items():
            if m not in needs and any(top and _loads(n, needs) for n, _, top in imps):
                needs.add(m)
                changed = True
    return needs


def _loads(name: str, modules: set[str]) -> bool:
    """Importing `name` runs it and every package above it: does one of them belong to `modules`?"""
    parts = name.split(".")
    return any(".".join(parts[:i]) in modules for i in range(1, len(parts) + 1))


def test_every_module_has_a_room():
    assert len(MODULES) > 60
    assert {room_of(m) for m, _ in MODULES} == set(ROOMS)


def test_rooms_depend_downward_only():
    upward = []
    for module, imps in IMPORTS.items():
        mine = ROOMS.index(room_of(module))
        for name, line, _ in imps:
            if name.startswith("dwpose_edge") and ROOMS.index(room_of(name)) > mine:
                upward.append(f"{PATHS[module].relative_to(ROOT)}:{line} ({room_of(module)}) imports {name} "
                              f"({room_of(name)})")
    assert not upward, "imports from a higher room:\n" + "\n".join(upward)


def test_imports_at_module_top_except_optional_backends():
    optional_modules = _needs(OPTIONAL)  # our modules that are optional backends themselves
    inner = []
    for module, imps in IMPORTS.items():
        for name, line, top in imps:
            if top or _loads(name, OPTIONAL) or _loads(name, optional_modules):
                continue
            inner.append(f"{PATHS[module].relative_to(ROOT)}:{line} imports {name} inside a function")
    assert not inner, f"{len(inner)} in-function imports of non-optional modules:\n" + "\n".join(inner)


def test_running_path_needs_no_torch():
    """Runtimes (but the torch one), detectors, evaluation, the Estimator and the CLI's start import no torch."""
    torch_modules = _needs({"torch"})
    running = [m for m in IMPORTS if room_of(m) in ("base", "runtimes", "detectors", "evaluation", "api", "cli")
               and m != "dwpose_edge.runtimes.torch_runtime"]
    assert not sorted(set(running) & torch_modules)
    assert "dwpose_edge.models" in torch_modules  # the check sees torch where it is


def test_importing_the_package_and_cli_loads_no_torch_or_optional_runtime():
    code = ("import sys, dwpose_edge, dwpose_edge.cli, dwpose_edge.estimator; "
            "print(sorted(m for m in ('torch', 'openvino', 'ncnn', 'nncf', 'matplotlib') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), check=True)
    assert proc.stdout.strip() == "[]"


def test_running_path_loads_no_onnx():
    """`onnx` (~0.45 s to import) stays out of a device's start: import, CLI, and the embedded default on
    onnxruntime and OpenVINO up to the first keypoints (files vouched for by their sha256, not parsed)."""
    code = ("import importlib.util, sys, cv2, dwpose_edge.cli\n"
            "from dwpose_edge import Estimator\n"
            "from dwpose_edge.data import DATA_DIR\n"
            "image = cv2.imread(str(DATA_DIR / 'grace_hopper.jpg'))\n"
            "runtimes = ['onnxruntime'] + (['openvino'] if importlib.util.find_spec('openvino') else [])\n"
            "for rt in runtimes:\n"
            "    assert len(Estimator(runtime=rt, threads=1)(image)) == 1\n"
            "print(runtimes, sorted(m for m in ('onnx', 'ml_dtypes', 'torch') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), check=True)
    assert proc.stdout.strip().endswith("[]"), proc.stdout


@pytest.mark.parametrize("module", ["dwpose_edge.runtimes.onnxruntime_runtime", "dwpose_edge.detectors",
                                    "dwpose_edge.export.pipeline", "dwpose_edge.evaluation.metric"])
def test_rooms_import_alone_in_a_fresh_interpreter(module):
    """No room needs another one imported first (what a hidden cycle looks like at run time)."""
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env=child_env(), capture_output=True)


# raised inside a parser whose caller turns them into a DwposeEdgeError with the file named
CONVERTED = {"dwpose_edge/manifest.py": "read_manifest -> ModelFileError",
             "dwpose_edge/models/checkpoint.py": "the unpickler's guards -> WeightsError naming the global"}
# (IndexError stays allowed: PoseResult.__getitem__ follows the sequence protocol)
BUILTIN_ERRORS = {"ValueError", "TypeError", "KeyError", "RuntimeError", "OSError", "IOError",
                  "FileNotFoundError", "NotImplementedError", "AssertionError", "Exception", "ImportError",
                  "ModuleNotFoundError", "AttributeError", "LookupError", "ZeroDivisionError"}


def test_deliberate_errors_are_dwpose_edge_errors():
    """Every `raise SomeBuiltinError(...)` in the package is a DwposeEdgeError instead (the CLI catches those
    and prints one line), except in the two parsers whose callers convert them."""
    plain = []
    for module, path in MODULES:
        rel = str(path.relative_to(ROOT))
        if rel in CONVERTED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name) \
                    and node.exc.func.id in BUILTIN_ERRORS:
                plain.append(f"{rel}:{node.lineno} raises {node.exc.func.id}")
    assert not plain, "\n".join(plain)
