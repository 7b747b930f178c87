"""controlnet_aux 0.0.10's real code for the annotator tests, fetched as tests/test_openpose.py fetches it (the
audited wheel from PyPI, sha256-checked, cached): ControlNet's `HWC3` and `resize_image` (controlnet_aux/util.py),
DWPose's `draw_pose` and `DWposeDetector.__call__` (controlnet_aux/dwpose/__init__.py) and its drawing module
(controlnet_aux/dwpose/util.py). Functions are taken out of their files with `ast`, so torch and mmpose (imported
at those files' tops) are not needed."""
from __future__ import annotations

import ast
import contextlib
import importlib.util
import os
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from test_openpose import fetch_wheel_files

CALL_DIR = Path(os.environ.get("DWPOSE_EDGE_CONTROLNET_AUX_CALL_DIR",
                               Path.home() / ".cache" / "dwpose_edge" / "controlnet_aux-0.0.10-call"))
FILES = {"util.py": "controlnet_aux/util.py", "dwpose_util.py": "controlnet_aux/dwpose/util.py",
         "dwpose_init.py": "controlnet_aux/dwpose/__init__.py"}


def _functions(path: Path, names: set[str], namespace: dict, cls: str | None = None) -> dict:
    """Exec the named top-level functions (or methods of class `cls`) of a file in `namespace`."""
    tree = ast.parse(path.read_text())
    if cls is not None:
        tree = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    body = tree.body
    fns = [n for n in body if isinstance(n, ast.FunctionDef) and n.name in names]
    assert {f.name for f in fns} == names, f"{path}: missing {names - {f.name for f in fns}}"
    exec(compile(ast.Module(fns, type_ignores=[]), str(path), "exec"), namespace)
    return {n: namespace[n] for n in names}


def load_reference() -> types.SimpleNamespace:
    """HWC3, resize_image, draw_pose and `call(self, image, detect_resolution, image_resolution, output_type)`:
    DWposeDetector.__call__ with `self.pose_estimation(bgr) -> (keypoints, scores)` as Wholebody returns them."""
    pytest.importorskip("matplotlib", reason="the annotator's draw_handpose needs matplotlib")
    from PIL import Image

    if not all((CALL_DIR / name).exists() for name in FILES):
        fetch_wheel_files(CALL_DIR, FILES)
    spec = importlib.util.spec_from_file_location("controlnet_aux_dwpose_util_call", CALL_DIR / "dwpose_util.py")
    util = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(util)
    helpers = _functions(CALL_DIR / "util.py", {"HWC3", "resize_image"}, {"np": np, "cv2": cv2})
    draw = _functions(CALL_DIR / "dwpose_init.py", {"draw_pose"}, {"np": np, "util": util})
    torch = types.SimpleNamespace(no_grad=contextlib.nullcontext)
    call = _functions(CALL_DIR / "dwpose_init.py", {"__call__"},
                      {"np": np, "cv2": cv2, "torch": torch, "Image": Image, "util": util, **helpers, **draw},
                      cls="DWposeDetector")["__call__"]
    return types.SimpleNamespace(call=call, **helpers, **draw)


def wholebody_output(keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What controlnet_aux's Wholebody returns for mmpose's 133 keypoints (float32): neck (shoulders' mean, score
    1 if both > 0.3) inserted at 17, then the OpenPose order."""
    info = np.concatenate([keypoints, scores[..., None]], axis=-1).astype(np.float32)
    neck = info[:, [5, 6]].mean(axis=1)
    neck[:, 2] = np.logical_and(info[:, 5, 2] > 0.3, info[:, 6, 2] > 0.3)
    info = np.insert(info, 17, neck, axis=1)
    src = [17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3]
    dst = [1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17]
    info[:, dst] = info[:, src]
    return info[..., :2].copy(), info[..., 2].copy()
