"""`dwpose-edge demo`: online it fetches the official DWPose-t once (verified) and draws the real photos;
offline it draws the embedded model on generated people only and says how to get real-photo results.
A local HTTP server on 127.0.0.1 stands in for the network (DWPOSE_EDGE_WEIGHTS_URL is the mirror)."""
from __future__ import annotations

import functools
import shutil
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from dwpose_edge import Estimator
from dwpose_edge.data import DATA_DIR
from dwpose_edge.demo import DEMO_WEIGHTS, PHOTOS, run_demo
from dwpose_edge.draw import draw
from dwpose_edge.errors import ChecksumError
from dwpose_edge.hashing import sha256_file
from dwpose_edge.weights import get_entry
from shared_models import checkpoint

FILENAME = get_entry(DEMO_WEIGHTS).filename


class Mirror:
    """A static file server on 127.0.0.1 that counts the GET requests it served."""

    def __init__(self, root: Path) -> None:
        self.gets: list[str] = []
        mirror = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                mirror.gets.append(self.path)
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    root = tmp_path / "mirror"
    root.mkdir()
    shutil.copy(checkpoint(), root / FILENAME)  # a trained-statistics dwpose-t stands in for the official file
    m = Mirror(root)
    monkeypatch.setenv("DWPOSE_EDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DWPOSE_EDGE_WEIGHTS_URL", m.url)
    yield m
    m.close()


def test_online_fetches_once_verified_and_draws_the_real_photos(mirror, tmp_path):
    served = tmp_path / "mirror" / FILENAME
    lines: list[str] = []
    res = run_demo(tmp_path / "out", sha256=sha256_file(served), log=lines.append)
    assert res["official"] == tmp_path / "cache" / FILENAME
    assert sha256_file(res["official"]) == sha256_file(served)
    assert mirror.gets == [f"/{FILENAME}"]
    names = sorted(p.name for p in res["files"])
    assert names == sorted([f"{Path(n).stem}_pose.png" for n in PHOTOS] + ["val_000004_pose.png"])
    assert not any(line.startswith("offline") for line in lines)
    # the photo drawings are exactly those of the fetched weights
    est = Estimator("dwpose-t", weights=str(served), flip_test=True)
    for name in PHOTOS:
        image = cv2.imread(str(DATA_DIR / name))
        expected = draw(image, est(image))
        drawn = cv2.imread(str(tmp_path / "out" / f"{Path(name).stem}_pose.png"))
        np.testing.assert_array_equal(drawn, expected)
        assert (drawn != image).any()
    # a second run uses the cached, verified file: no new request
    run_demo(tmp_path / "out2", sha256=sha256_file(served), log=lines.append)
    assert mirror.gets == [f"/{FILENAME}"]


def test_offline_draws_only_generated_people_and_says_how(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on: connection refused, as with no network
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DWPOSE_EDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DWPOSE_EDGE_WEIGHTS_URL", f"http://127.0.0.1:{port}")
    lines: list[str] = []
    res = run_demo(tmp_path / "out", sha256="0" * 64, log=lines.append)
    assert res["official"] is None
    assert [p.name for p in res["files"]] == ["val_000004_pose.png"]
    offline = [line for line in lines if line.startswith("offline")]
    assert len(offline) == 1 and "\n" not in offline[0]
    assert "Connection refused" in offline[0] and str(tmp_path / "cache" / FILENAME) in offline[0]
    assert not (tmp_path / "cache" / FILENAME).exists()


def test_offline_flag_makes_no_request(mirror, tmp_path):
    res = run_demo(tmp_path / "out", offline=True, log=lambda line: None)
    assert res["official"] is None and mirror.gets == []


def test_a_wrong_file_is_an_error_not_offline(mirror, tmp_path):
    with pytest.raises(ChecksumError, match="corrupt or a different file"):
        run_demo(tmp_path / "out", sha256="ab" * 32, log=lambda line: None)
    assert not (tmp_path / "cache" / FILENAME).exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_demo_online_through_the_mirror(mirror, tmp_path, capsys):
    from dwpose_edge.cli import main

    served = tmp_path / "mirror" / FILENAME
    assert main(["demo", "--out", str(tmp_path / "out"), "--sha256", sha256_file(served)]) == 0
    out = capsys.readouterr().out
    assert f"model: the official dwpose-t ({FILENAME}, sha256-verified" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [f"{Path(n).stem}_pose.png" for n in PHOTOS] + ["val_000004_pose.png"])
    assert main(["demo", "--out", str(tmp_path / "out"), "--sha256", "cd" * 32]) == 2  # cached file, wrong hash
    assert "sha256" in capsys.readouterr().err
