"""The test model of the hardening tests, on every installed runtime, exported once per machine.

Why not `weights="random"`: the seeded untrained dwpose-t's backbone output is ~1e-10 (activations vanish
through the default-initialised BatchNorms), so its logits are the same for every input to ~5e-5 and its
argmaxes never move: a test comparing outputs could not tell one input from another. Here the same seeded
weights get BatchNorm statistics measured on real crops (one forward pass in train mode, cumulative
average), so every layer keeps unit-scale activations and ~94 % of the argmaxes differ between two crops.
All floats are rounded to fp16-representable values and the pass runs on one thread, so the file (and
with it the export cache key, its sha256) is byte-identical from run to run.

Non-torch runtimes export on first use into the user cache (`~/.cache/dwpose_edge/exports`, ~20-60 s per
runtime the first time, then well under a second); `model_dir` returns that validated folder so tests can
copy and damage its files.
"""
from __future__ import annotations

import atexit
import functools
import importlib.util
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

RUNTIMES = ("torch", "onnxruntime", "openvino", "ncnn", "litert")
PACKAGES = {"torch": ("torch",), "onnxruntime": ("onnxruntime",), "openvino": ("openvino",), "ncnn": ("ncnn", "pnnx"),
            "litert": ("ai_edge_litert", "litert_torch")}
MODEL = "dwpose-t"


def installed(runtime: str) -> bool:
    return all(importlib.util.find_spec(p) is not None for p in PACKAGES[runtime])


def runtime_params(runtimes=RUNTIMES) -> list:
    """pytest params, skipped with a reason where the runtime's package is missing."""
    return [pytest.param(r, id=r, marks=pytest.mark.skipif(not installed(r), reason=f"{r} is not installed"))
            for r in runtimes]


@functools.lru_cache(maxsize=None)
def checkpoint() -> Path:
    """dwpose-t, seeded weights, BatchNorm statistics measured on the bundled photos (see the module doc)."""
    import cv2
    import torch

    from dwpose_edge.data import DATA_DIR
    from dwpose_edge.models import build_model
    from dwpose_edge.preprocess import crop_boxes

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = build_model(MODEL)
        crops = []
        for name in ("grace_hopper.jpg", "astronaut.jpg"):
            img = cv2.imread(str(DATA_DIR / name))
            boxes = np.array([[0, 0, img.shape[1], img.shape[0]], [50, 50, 300, 400]], np.float32)
            crops.append(crop_boxes(img, boxes, model.spec.input_size)[0])
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = None  # cumulative average: the statistics of exactly this batch
                m.reset_running_stats()
        model.train()
        with torch.no_grad():
            model(torch.from_numpy(np.concatenate(crops)))
        state = model.eval().state_dict()
        for v in state.values():
            if v.is_floating_point():
                v.copy_(v.half().float())
    finally:
        torch.set_num_threads(threads)
    folder = Path(tempfile.mkdtemp(prefix="dwpose-test-model-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / f"{MODEL}-bn-calibrated.pth"
    torch.save({"meta": {"what": "tests/shared_models.py"}, "state_dict": state}, path)
    return path


@functools.lru_cache(maxsize=None)
def model_dir(runtime: str, precision: str = "fp32") -> Path:
    """The cache folder holding the validated export of the test model for `runtime`."""
    from dwpose_edge import Estimator
    from dwpose_edge.export.cache import export_cache_folder

    Estimator(MODEL, weights=str(checkpoint()), runtime=runtime, precision=precision, threads=1)
    return export_cache_folder(MODEL, checkpoint(), runtime, precision)


def estimator(runtime: str, **kwargs):
    """A fresh Estimator on the test model (threads=1 unless given)."""
    from dwpose_edge import Estimator

    kwargs.setdefault("threads", 1)
    if runtime == "torch":
        return Estimator(MODEL, weights=str(checkpoint()), runtime="torch", **kwargs)
    return Estimator(MODEL, runtime=runtime, model_dir=model_dir(runtime, kwargs.get("precision", "fp32")), **kwargs)
