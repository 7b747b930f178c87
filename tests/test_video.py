"""Frame sources (video file, image sequence, folder, file:// URL, a local HTTP MJPEG stream, cameras) and
writers (JSON lines readable mid-stream, drawn video), and `predict --det-every` end to end. Only 127.0.0.1."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from dwpose_edge.cli import main
from dwpose_edge.draw import draw
from dwpose_edge.errors import InputError
from dwpose_edge.estimator import Estimator
from dwpose_edge.result import PoseResult
from dwpose_edge.stream import run_track
from dwpose_edge.video import DrawnVideoWriter, JsonLinesWriter, draw_tracked, open_source, source_kind
from dwpose_edge.train.synth.clip import render_clip, write_clip

N = 8


@pytest.fixture(scope="module")
def clip():
    return render_clip(seed=4, n_frames=N, size=(320, 240), n_people=2)


@pytest.fixture(scope="module")
def files(clip, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("clip")
    write_clip(clip, out)
    video = out / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (320, 240))
    for f in clip.frames:
        writer.write(f)
    writer.release()
    return {"folder": out / "frames", "pattern": out / "frames" / "%06d.png", "video": video}


@pytest.fixture(scope="module")
def est():
    return Estimator(runtime="onnxruntime")


class MjpegServer:
    """A local multipart JPEG stream, as IP cameras serve; with `hold_after`, it pauses after that many
    frames until `release` is set."""

    def __init__(self, frames: list[np.ndarray], hold_after: int | None = None) -> None:
        jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for f in frames]
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                for i, jpeg in enumerate(jpegs):
                    if hold_after is not None and i == hold_after:
                        server.release.wait(timeout=60)
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                                     + jpeg + b"\r\n")
                    self.wfile.flush()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "MjpegServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- sources -----------------------------------------------------------------------------------------------

def test_source_kinds(tmp_path):
    (tmp_path / "imgs").mkdir()
    assert source_kind(0) == source_kind("2") == "camera"
    assert source_kind("rtsp://10.0.0.1/live") == source_kind("http://127.0.0.1:8080/x") == "stream"
    assert source_kind("file:///tmp/a.avi") == "stream"
    assert source_kind(str(tmp_path / "frames" / "%06d.png")) == "sequence"
    assert source_kind(str(tmp_path / "imgs")) == "folder"
    assert source_kind("a.PNG") == "image" and source_kind("a.mp4") == "video"


def test_sequence_folder_and_video_give_the_frames(clip, files):
    with open_source(str(files["pattern"])) as seq:
        frames = list(seq)
    assert not seq.live and seq.fps == 25.0 and len(frames) == N
    for a, b in zip(frames, clip.frames):
        np.testing.assert_array_equal(a, b)  # PNG: lossless
    folder = list(open_source(files["folder"], fps=12.0))
    assert len(folder) == N and all(np.array_equal(a, b) for a, b in zip(folder, clip.frames))
    video = open_source(files["video"])
    assert video.fps == pytest.approx(12.0) and video.frame_count == N and not video.live
    decoded = list(video)
    assert len(decoded) == N
    assert max(np.abs(a.astype(int) - b).mean() for a, b in zip(decoded, clip.frames)) < 5  # MJPEG: 3.1 measured


def test_file_url_is_read_as_a_stream(files):
    direct = list(open_source(files["video"]))
    src = open_source("file://" + str(files["video"]))
    assert src.live
    frames = list(src)
    assert len(frames) == N and all(np.array_equal(a, b) for a, b in zip(frames, direct))


def test_local_http_mjpeg_stream(clip):
    with MjpegServer(clip.frames) as server:
        src = open_source(server.url)
        frames = list(src)
    assert src.live and src.frame_count == 0
    assert len(frames) == N
    assert max(np.abs(a.astype(int) - b).mean() for a, b in zip(frames, clip.frames)) < 4  # JPEG 95: 2.5 measured


def test_unopenable_sources_fail_with_one_line(tmp_path):
    with pytest.raises(InputError, match="input not found"):
        open_source(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="camera 97"):
        open_source(97)
    with pytest.raises(InputError, match="could not connect"):
        open_source(f"http://127.0.0.1:{_closed_port()}/stream.mjpg")
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(InputError, match="corrupt file"):
        open_source(fake)
    with pytest.raises(InputError, match="no image matches"):
        open_source(tmp_path / "%06d.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        open_source(tmp_path / "empty")


# --- writers -----------------------------------------------------------------------------------------------

def _result(ids: list[int] | None) -> PoseResult:
    """People with keypoints on a diagonal inside the box (50,50)-(200,200); one person when `ids` is None."""
    n = 1 if ids is None else len(ids)
    k = np.repeat(np.linspace(60, 180, 133, dtype=np.float32)[None, :, None], 2, axis=2).repeat(n, axis=0)
    return PoseResult(k, np.full((n, 133), 0.9, np.float32), np.tile(np.float32([[50, 50, 200, 200]]), (n, 1)),
                      None if ids is None else np.asarray(ids, np.int64))


def test_jsonl_lines_are_complete_before_close(tmp_path):
    path = tmp_path / "out.jsonl"
    writer = JsonLinesWriter(path)
    for i in range(3):
        writer.write(i, _result([7, 9]), (240, 320, 3), i / 12)
        lines = path.read_text().splitlines()  # another reader, while the writer is open
        assert len(lines) == i + 1
        line = json.loads(lines[-1])
        assert line["frame"] == i and line["time"] == pytest.approx(i / 12, abs=1e-4)
        assert [p["track_id"] for p in line["persons"]] == [7, 9]
    writer.close()
    openpose = JsonLinesWriter(tmp_path / "op.jsonl", fmt="openpose")
    openpose.write(0, _result([3]), (240, 320, 3), 0.0)
    openpose.close()
    line = json.loads((tmp_path / "op.jsonl").read_text())
    assert line["canvas_height"] == 240 and [p["track_id"] for p in line["people"]] == [3]
    with pytest.raises(InputError, match="is a folder"):
        JsonLinesWriter(tmp_path)


def test_jsonl_is_readable_while_a_stream_runs(clip, est, tmp_path):
    """run_track on a local stream that stalls after 5 frames: the lines of the frames done are there, whole."""
    path = tmp_path / "live.jsonl"
    summary: dict = {}
    with MjpegServer(clip.frames, hold_after=5) as server:
        worker = threading.Thread(target=lambda: summary.update(
            run_track(est, server.url, det_every=3, jsonl=str(path), progress=False)))
        worker.start()
        deadline = time.monotonic() + 60
        lines: list[str] = []
        while time.monotonic() < deadline and len(lines) < 3:
            time.sleep(0.05)
            lines = path.read_text().splitlines() if path.exists() else []
        assert worker.is_alive()  # the stream is still running
        assert 3 <= len(lines) <= 5
        assert [json.loads(line)["frame"] for line in lines] == list(range(len(lines)))
        server.release.set()
        worker.join(timeout=60)
    assert summary["frames"] == N
    final = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["frame"] for line in final] == list(range(N))
    assert all(p["track_id"] == 0 for line in final for p in line["persons"])  # detector 'none': one person


def test_drawn_video_has_ids_and_every_frame(clip, tmp_path):
    image = clip.frames[0]
    plain = draw(image, _result([0]))
    np.testing.assert_array_equal(draw_tracked(image, _result(None)), draw(image, _result(None)))
    with_ids = draw_tracked(image, _result([5]), fps=12.5)
    changed = np.abs(with_ids.astype(int) - plain).sum(axis=2) > 0
    assert changed[:40].any()       # the frames/s in the top-left corner
    assert changed[30:50, 50:90].any()  # the id above the box's top-left corner
    path = tmp_path / "drawn.mp4"
    with DrawnVideoWriter(path, fps=12.0) as writer:
        for f in clip.frames:
            writer.write(f, _result([1]), 10.0)
    back = open_source(path)
    assert back.frame_count == N and len(list(back)) == N
    bad = DrawnVideoWriter(tmp_path / "x.unknownext", fps=12.0)
    with pytest.raises(InputError, match="no encoder"):
        bad.write(image, _result([1]))


# --- predict --det-every -----------------------------------------------------------------------------------

def test_predict_det_every_writes_streamable_results(files, tmp_path, capsys):
    jsonl, video, out = tmp_path / "t.jsonl", tmp_path / "t.mp4", tmp_path / "t.json"
    rc = main(["predict", str(files["pattern"]), "--runtime", "onnxruntime", "--det-every", "3", "--smooth",
               "--jsonl", str(jsonl), "--draw-video", str(video), "--out", str(out), "--format", "openpose"])
    assert rc == 0
    assert f"{N} frame(s)" in capsys.readouterr().out
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(N))
    assert all("track_id" in p for line in lines for p in line["people"])
    assert len(list(open_source(video))) == N
    summary = json.loads(out.read_text())
    entries = summary["files"][str(files["pattern"])]
    assert len(entries) == N and summary["det_every"] == 3
    assert [p["track_id"] for p in entries[0]["people"]] == [p["track_id"] for p in lines[0]["people"]]


def test_predict_tracking_takes_one_input(files, capsys):
    rc = main(["predict", str(files["video"]), str(files["video"]), "--runtime", "onnxruntime", "--det-every", "2"])
    assert rc == 2
    assert "one video" in capsys.readouterr().err


def test_make_data_clip(tmp_path, capsys):
    assert main(["make-data", "--out", str(tmp_path), "--clip", "3", "--people", "2", "--clip-size", "160x128"]) == 0
    data = json.loads((tmp_path / "clip.json").read_text())
    assert data["frame_pattern"] == "frames/%06d.png" and len(data["frames"]) == 3
    frames = list(open_source(tmp_path / data["frame_pattern"]))
    assert len(frames) == 3 and frames[0].shape == (128, 160, 3)
    people = [p for p in data["frames"][1] if p is not None]
    assert people and all(len(p["keypoints"]) == 133 * 3 for p in people)
