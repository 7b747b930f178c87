from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("OPENVINO_TELEMETRY", "0")

from dwpose_edge import weights as W  # noqa: E402
from dwpose_edge.data import DATA_DIR  # noqa: E402


@pytest.fixture(scope="session")
def grace_hopper() -> np.ndarray:
    image = cv2.imread(str(DATA_DIR / "grace_hopper.jpg"))
    assert image is not None
    return image


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    image = cv2.imread(str(DATA_DIR / "astronaut.jpg"))
    assert image is not None
    return image


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A dwpose-t checkpoint in mmpose's format with seeded random weights and perturbed BN stats."""
    import torch

    from dwpose_edge.models import build_model

    torch.manual_seed(1)
    model = build_model("dwpose-t")
    state = model.state_dict()
    g = torch.Generator().manual_seed(2)
    for k, v in state.items():
        if k.endswith("running_var"):
            v.copy_(torch.rand(v.shape, generator=g) * 0.5 + 0.75)
        elif k.endswith("running_mean"):
            v.copy_(torch.randn(v.shape, generator=g) * 0.1)
        elif k.endswith("num_batches_tracked"):
            v.fill_(1000)
    path = tmp_path_factory.mktemp("ckpt") / "dwpose-t_random.pth"
    torch.save({"meta": {"epoch": 0, "dataset_meta": {"dataset_name": "coco_wholebody"}}, "state_dict": state}, path)
    return path


# tests import helpers such as tiny_wholebody from this folder
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="module")
def server():
    """A real HTTP server on 127.0.0.1 (tests/http_server.py), one per test module, for download tests."""
    from http_server import LocalServer  # tests/ is on sys.path from here on (above)

    s = LocalServer()
    yield s
    s.close()


@pytest.fixture
def weights_env(tmp_path, monkeypatch, server):
    """A fresh weights cache under tmp_path, no mirror, nothing verified yet, the server with no routes."""
    monkeypatch.setenv(W.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(W.MIRROR_ENV, raising=False)
    W._VERIFIED.clear()
    server.routes.clear()
    server.requests.clear()
    yield
    W._VERIFIED.clear()
