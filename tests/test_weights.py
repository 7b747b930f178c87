"""Weights registry, verifying downloader and checkpoint loading, against a real local HTTP server."""
from __future__ import annotations

import dataclasses
import hashlib
import socket
import stat
import time
from pathlib import Path

import pytest
import torch

from dwpose_edge import weights as W
from dwpose_edge.errors import ChecksumError, WeightsError
from dwpose_edge.models import build_model, load_checkpoint
from dwpose_edge.specs import MODEL_SPECS


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def clean_env(weights_env):
    """Every test starts from an empty weights cache (conftest.weights_env)."""


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A dwpose-t checkpoint in mmpose's layout, fixed seed: (path, bytes, sha256, state_dict)."""
    torch.manual_seed(0)
    model = build_model("dwpose-t")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("ckpt") / "dwpose-t.pth"
    torch.save({"meta": {"mmpose_version": "1.3.2", "epoch": 270}, "state_dict": state}, path)
    data = path.read_bytes()
    return path, data, hashlib.sha256(data).hexdigest(), state


def _assert_loads_equal(path: Path, state: dict) -> None:
    model = load_checkpoint(build_model("dwpose-t"), path)
    got = model.state_dict()
    assert set(got) == set(state)
    for k, v in state.items():
        assert torch.equal(got[k], v), k


def _leftovers(directory: Path) -> list:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _register(monkeypatch, entry: W.WeightsEntry) -> W.WeightsEntry:
    monkeypatch.setitem(W.REGISTRY, entry.name, entry)
    return entry


# ----------------------------------------------------------------------------- registry

# Git LFS pointers of Hugging Face yzd-v/DWPose at commit f7c16a3: sha256, size (dw-tt's size not recorded)
HF_PINNED = {
    "dw-tt_ucoco.pth": ("7097f5af7f100609acffe58eb01734f02ffbfe22794fe029c2ea0a4d68d0f42d", None),
    "dw-ss_ucoco.pth": ("c13dfb1dc63aac2d794ac130bb89734330b3c74a1aff921a40fcde1d87361ffc", 102933707),
    "dw-mm_ucoco.pth": ("b24f27f57d18d8bb7abc3af8e09bcc5f77ee9ecae13439f70a8f7d1b885413cf", 216812378),
    "dw-ll_ucoco.pth": ("e9600664e7927229ed594197d552023e3be213f810beb38847a959ec8261e0f7", 404734742),
    "dw-ll_ucoco_384.pth": ("0d9408b13cd863c4e95a149dd31232f88f2a12aa6cf8964ed74d7d97748c7a07", 406878486),
    "dw-ll_ucoco_384.onnx": ("724f4ff2439ed61afb86fb8a1951ec39c6220682803b4a8bd4f598cd913b1843", 134399116),
    "yolox_l.onnx": ("7860ae79de6c89a3c1eb72ae9a2756c0ccfbe04b7791bb5880afabd97855a411", 216746733),
}


def test_registry_contents():
    names = W.list_weights()
    assert len(names) == 18  # + 6 OpenMMLab SDK zips, checked in test_sdk_registry.py
    mm = {n: e for n, e in W.REGISTRY.items() if e.source == "openmmlab" and e.kind == "pth"}
    assert sorted(mm) == sorted(MODEL_SPECS) == sorted(W._VARIANTS)
    expected_hex = {"dwpose-t": "dcf277bf", "dwpose-s": "3fd922c8", "dwpose-m": "c8b76419",
                    "dwpose-l": "4d6dfc62", "dwpose-l-384": "2438fd99"}
    for name, e in mm.items():
        assert e.model == name and e.kind == "pth" and e.sha256_is_prefix and e.size is None
        assert e.sha256 == expected_hex[name] == W.sha256_from_filename(e.filename)
        assert e.url == "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/" + e.filename
        assert e.filename.startswith(f"rtmpose-{name.split('-')[1]}_simcc-ucoco_dw-ucoco_270e-")
        assert ("384x288" in e.filename) == (name == "dwpose-l-384")
        assert W.weights_for_model(name) is e
    hf = {e.filename: e for e in W.REGISTRY.values() if e.source == "huggingface"}
    assert sorted(hf) == sorted(["dw-tt_ucoco.pth", "dw-ss_ucoco.pth", "dw-mm_ucoco.pth", "dw-ll_ucoco.pth",
                                 "dw-ll_ucoco_384.pth", "dw-ll_ucoco_384.onnx", "yolox_l.onnx"])
    for fn, e in hf.items():
        assert e.url == f"https://huggingface.co/yzd-v/DWPose/resolve/main/{fn}"
        assert (e.sha256, e.size) == HF_PINNED[fn] and not e.sha256_is_prefix
        assert e.kind == fn.rsplit(".", 1)[1]
    assert hf["dw-ll_ucoco_384.onnx"].model == "dwpose-l-384" and hf["yolox_l.onnx"].model is None
    assert hf["dw-mm_ucoco.pth"].model == "dwpose-m"
    with pytest.raises(dataclasses.FrozenInstanceError):
        W.REGISTRY["dwpose-t"].sha256 = "00000000"
    # an entry whose hash contradicts its filename is rejected at construction
    with pytest.raises(ValueError, match="contradicts"):
        dataclasses.replace(W.REGISTRY["dwpose-t"], sha256="deadbeef")
    # every entry is verified: no hash is no entry; a size is a positive byte count
    with pytest.raises(ValueError, match="sha256 is required"):
        dataclasses.replace(W.REGISTRY["dwpose-s-hf"], sha256=None)
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="positive byte count"):
            dataclasses.replace(W.REGISTRY["dwpose-s-hf"], size=bad)


def test_sha256_parsing():
    assert W.sha256_from_filename("rtmpose-l_simcc-ucoco_dw-ucoco_270e-384x288-2438fd99_20230728.pth") == "2438fd99"
    assert W.sha256_from_filename("/x/y/model-0123abcd.pth") == "0123abcd"
    assert W.sha256_from_filename("dw-ll_ucoco_384.pth") is None
    for bad in ("xyz", "abc", "0" * 65, "0123456g"):
        with pytest.raises(WeightsError, match="not a sha256"):
            W.download("http://127.0.0.1:1/x", "/nonexistent/x", sha256=bad)


def test_unknown_name_and_missing_path(tmp_path):
    with pytest.raises(WeightsError) as ei:
        W.resolve_weights("dwpose-xl")
    msg = str(ei.value)
    assert "dwpose-xl" in msg and all(n in msg for n in W.list_weights())
    with pytest.raises(WeightsError, match="not found"):
        W.resolve_weights(tmp_path / "nope.pth")
    with pytest.raises(WeightsError, match="not a file"):
        W.resolve_weights(tmp_path)
    with pytest.raises(WeightsError, match="dwpose-l-384"):
        W.get_entry("nope")


def test_local_path_returned_as_is(ckpt):
    path, data, digest, _ = ckpt
    assert W.resolve_weights(path) == path
    assert W.resolve_weights(str(path)) == Path(str(path))
    assert W.resolve_weights(path, sha256=digest[:12]) == path
    with pytest.raises(ChecksumError, match=digest):
        W.resolve_weights(path, sha256="0" * 64)


# ----------------------------------------------------------------------------- download


def test_download_verifies_and_writes_atomically(server, ckpt, tmp_path):
    path, data, digest, state = ckpt
    server.routes["/files/dwpose-t.pth"] = (data, "ok")
    dest = tmp_path / "dl" / "sub" / "model.pth"  # parents created
    out = W.download(server.url("/files/dwpose-t.pth"), dest, sha256=digest, progress=True)
    assert out == dest
    assert dest.stat().st_size == len(data) > 20_000_000  # fp32 dwpose-t, 5.5 M values
    assert W.sha256_file(dest) == digest
    assert _leftovers(dest.parent) == ["model.pth"]  # the temp file was renamed, nothing else left
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    assert server.requests == ["/files/dwpose-t.pth"]
    _assert_loads_equal(dest, state)
    # overwrite an existing file, prefix hash, following a redirect (Hugging Face redirects to a CDN)
    server.routes["/redir.pth"] = (b"", "redirect:/files/dwpose-t.pth")
    dest.write_bytes(b"old")
    W.download(server.url("/redir.pth"), dest, sha256=digest[:8].upper(), progress=False)
    assert dest.read_bytes() == data and _leftovers(dest.parent) == ["model.pth"]
    # no hash given: still size-checked, written as is
    dest2 = tmp_path / "dl" / "nohash.pth"
    W.download(server.url("/files/dwpose-t.pth"), dest2, progress=False)
    assert dest2.read_bytes() == data


def test_truncated_body_is_an_error_and_leaves_nothing(server, ckpt, tmp_path):
    _, data, digest, _ = ckpt
    server.routes["/t.pth"] = (data, "truncate")
    dest = tmp_path / "d" / "t.pth"
    with pytest.raises(WeightsError) as ei:
        W.download(server.url("/t.pth"), dest, sha256=digest, progress=False)
    msg = str(ei.value)
    assert not isinstance(ei.value, ChecksumError)  # caught by the size check, before hashing
    assert "truncated" in msg and f"received {len(data) // 3} of {len(data)} bytes" in msg
    assert server.url("/t.pth") in msg
    assert not dest.exists() and _leftovers(dest.parent) == []
    # also without any expected hash
    with pytest.raises(WeightsError, match="truncated"):
        W.download(server.url("/t.pth"), dest, progress=False)
    assert _leftovers(dest.parent) == []


def test_corrupted_bytes_raise_checksum_error_and_keep_old_file(server, ckpt, tmp_path):
    _, data, digest, _ = ckpt
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    bad_digest = hashlib.sha256(bad).hexdigest()
    server.routes["/c.pth"] = (bytes(bad), "ok")
    dest = tmp_path / "c" / "c.pth"
    with pytest.raises(ChecksumError) as ei:
        W.download(server.url("/c.pth"), dest, sha256=digest, progress=False)
    msg = str(ei.value)
    assert digest in msg and bad_digest in msg and server.url("/c.pth") in msg
    assert not dest.exists() and _leftovers(dest.parent) == []
    # an existing file at dest is untouched by a failed download (atomic replace only on success)
    dest.write_bytes(b"previous good file")
    with pytest.raises(ChecksumError):
        W.download(server.url("/c.pth"), dest, sha256=digest[:8], progress=False)
    assert dest.read_bytes() == b"previous good file" and _leftovers(dest.parent) == ["c.pth"]


def test_http_404_names_url_and_manual_path(server, tmp_path, monkeypatch):
    dest = tmp_path / "x" / "missing.pth"
    url = server.url("/missing.pth")
    with pytest.raises(WeightsError) as ei:
        W.download(url, dest, progress=False)
    msg = str(ei.value)
    assert url in msg and "404" in msg and str(dest) in msg
    assert _leftovers(dest.parent) == []
    # through the registry with a mirror: the mirror URL, the official URL and the cache path
    W_entry = W.REGISTRY["dwpose-s"]
    monkeypatch.setenv(W.MIRROR_ENV, server.url("/mirror/"))
    with pytest.raises(WeightsError) as ei:
        W.resolve_weights("dwpose-s", progress=False)
    msg = str(ei.value)
    assert server.url("/mirror/" + W_entry.filename) in msg and "404" in msg
    assert W_entry.url in msg and str(W.cache_dir() / W_entry.filename) in msg
    assert not (W.cache_dir() / W_entry.filename).exists()


def test_offline_connection_refused(tmp_path, monkeypatch):
    port = _free_port()
    base = f"http://127.0.0.1:{port}/w"
    monkeypatch.setenv(W.MIRROR_ENV, base)
    entry = W.REGISTRY["dwpose-l-384"]
    t0 = time.perf_counter()
    with pytest.raises(WeightsError) as ei:
        W.resolve_weights("dwpose-l-384", progress=False, timeout=5)
    assert time.perf_counter() - t0 < 5
    msg = str(ei.value)
    assert f"{base}/{entry.filename}" in msg
    assert "refused" in msg.lower()
    assert f"put it at {W.cache_dir() / entry.filename}" in msg
    assert _leftovers(W.cache_dir()) == []


def test_stalled_server_times_out(server, ckpt, tmp_path):
    _, data, _, _ = ckpt
    server.routes["/slow.pth"] = (data, "stall")
    dest = tmp_path / "s" / "slow.pth"
    t0 = time.perf_counter()
    with pytest.raises(WeightsError) as ei:
        W.download(server.url("/slow.pth"), dest, progress=False, timeout=0.3)
    assert time.perf_counter() - t0 < 1.4
    assert "timed out after 1000 bytes" in str(ei.value)
    assert _leftovers(dest.parent) == []


# ----------------------------------------------------------------------------- cache and registry resolution


def test_cache_dir_env_override(monkeypatch, tmp_path, server, ckpt):
    monkeypatch.delenv(W.CACHE_ENV)
    assert W.cache_dir() == Path.home() / ".cache" / "dwpose_edge"
    monkeypatch.setenv(W.CACHE_ENV, "~/some/where")
    assert W.cache_dir() == Path.home() / "some" / "where"
    custom = tmp_path / "my cache"
    monkeypatch.setenv(W.CACHE_ENV, str(custom))
    assert W.cache_dir() == custom
    _, data, digest, state = ckpt
    entry = _register(monkeypatch, W.WeightsEntry(
        name="test-full", url="https://example.invalid/x/test-full.pth", filename="test-full.pth",
        model="dwpose-t", sha256=digest, source="huggingface", kind="pth"))
    monkeypatch.setenv(W.MIRROR_ENV, server.url("/m"))
    server.routes["/m/test-full.pth"] = (data, "ok")
    p = W.resolve_weights("test-full", progress=False)
    assert p == custom / "test-full.pth" == W.cached_path(entry) == W.cached_path("test-full")
    assert _leftovers(custom) == ["test-full.pth"]
    _assert_loads_equal(p, state)
    # second use: from the cache, no request
    assert W.resolve_weights("test-full", progress=False) == p
    assert server.requests == ["/m/test-full.pth"]


def test_cached_file_with_wrong_hash_is_rejected(monkeypatch, ckpt, server):
    _, data, digest, _ = ckpt
    _register(monkeypatch, W.WeightsEntry(
        name="test-full", url="https://example.invalid/test-full.pth", filename="test-full.pth",
        model="dwpose-t", sha256=digest, source="huggingface", kind="pth"))
    monkeypatch.setenv(W.MIRROR_ENV, server.url("/m"))
    server.routes["/m/test-full.pth"] = (data, "ok")
    cached = W.cache_dir() / "test-full.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(data[:-10])  # e.g. a copy truncated by hand
    with pytest.raises(ChecksumError) as ei:
        W.resolve_weights("test-full", progress=False)
    msg = str(ei.value)
    assert str(cached) in msg and "Delete it" in msg and digest in msg
    assert hashlib.sha256(data[:-10]).hexdigest() in msg
    assert cached.read_bytes() == data[:-10]  # never deleted silently
    assert server.requests == []
    # the official dwpose-t entry: prefix from the filename is enforced on the cached copy too
    official = W.cached_path("dwpose-t")
    official.write_bytes(data)
    assert not digest.startswith("dcf277bf")
    with pytest.raises(ChecksumError, match="prefix dcf277bf"):
        W.resolve_weights("dwpose-t")
    # after deleting, it is downloaded again and verified
    cached.unlink()
    assert W.resolve_weights("test-full", progress=False).read_bytes() == data
    # tampering after verification (new size/mtime) is noticed on the next use
    cached.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ChecksumError):
        W.resolve_weights("test-full")


def test_prefix_hash_openmmlab_filename_via_mirror(monkeypatch, server, ckpt):
    _, data, digest, state = ckpt
    prefix = digest[:8]
    filename = f"rtmpose-t_simcc-ucoco_dw-ucoco_270e-256x192-{prefix}_20230728.pth"
    assert W.sha256_from_filename(filename) == prefix
    entry = _register(monkeypatch, W.WeightsEntry(
        name="test-mm", url="https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/" + filename,
        filename=filename, model="dwpose-t", sha256=W.sha256_from_filename(filename),
        source="openmmlab", kind="pth"))
    assert entry.sha256_is_prefix
    # a mirror that keeps sources apart, via the {source} placeholder
    monkeypatch.setenv(W.MIRROR_ENV, server.url("/mirror/{source}/"))
    assert W.entry_url(entry) == server.url(f"/mirror/openmmlab/{filename}")
    server.routes[f"/mirror/openmmlab/{filename}"] = (data, "ok")
    p = W.resolve_weights("test-mm", progress=False)
    assert p == W.cache_dir() / filename and p.read_bytes() == data
    _assert_loads_equal(p, state)
    assert W.resolve_weights("test-mm") == p and len(server.requests) == 1
    # the same bytes served as the real dwpose-t: its prefix dcf277bf does not match -> refused, nothing cached
    real = W.REGISTRY["dwpose-t"]
    server.routes[f"/mirror/openmmlab/{real.filename}"] = (data, "ok")
    with pytest.raises(ChecksumError) as ei:
        W.resolve_weights("dwpose-t", progress=False)
    assert "prefix dcf277bf" in str(ei.value) and digest in str(ei.value)
    assert _leftovers(W.cache_dir()) == [filename]
    # a mirror value that is not a URL is refused clearly
    monkeypatch.setenv(W.MIRROR_ENV, "mirror.local/weights")
    with pytest.raises(WeightsError, match=W.MIRROR_ENV):
        W.resolve_weights("dwpose-s")


def test_hf_entries_are_verified_by_default(monkeypatch, server, ckpt):
    """No hash from the user: the pinned sha256 (and size, where recorded) decide; nothing wrong is cached."""
    _, data, digest, _ = ckpt
    monkeypatch.setenv(W.MIRROR_ENV, server.url("/hf"))
    server.routes["/hf/dw-tt_ucoco.pth"] = (data, "ok")  # not the released file
    with pytest.raises(ChecksumError) as ei:
        W.resolve_weights("dwpose-t-hf", progress=False)
    msg = str(ei.value)
    assert HF_PINNED["dw-tt_ucoco.pth"][0] in msg and digest in msg
    assert server.requests == ["/hf/dw-tt_ucoco.pth"] and _leftovers(W.cache_dir()) == []
    # a recorded size is checked too, and named with the size received
    server.routes["/hf/dw-ss_ucoco.pth"] = (data, "ok")
    with pytest.raises(ChecksumError) as ei:
        W.resolve_weights("dwpose-s-hf", progress=False)
    assert f"{len(data)} bytes received, expected 102933707 bytes" in str(ei.value)
    assert _leftovers(W.cache_dir()) == []
    # a cached copy of the wrong size is refused from its size alone
    cached = W.cached_path("dwpose-l-hf")
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(data[:1000])
    with pytest.raises(ChecksumError, match="has 1000 bytes, expected 404734742 bytes.*Delete it"):
        W.resolve_weights("dwpose-l-hf")
    assert cached.read_bytes() == data[:1000]  # never deleted silently
    # a user-given hash replaces the pinned one (a mirror's own build); the pinned size no longer applies
    p = W.resolve_weights("dwpose-s-hf", sha256=digest, progress=False)
    assert p == W.cache_dir() / "dw-ss_ucoco.pth" and p.read_bytes() == data


def test_pinned_entry_downloads_verified_through_a_mirror(monkeypatch, server, ckpt):
    """An entry pinned like the Hugging Face ones (full sha256 + size), served by a local mirror."""
    _, data, digest, state = ckpt
    entry = _register(monkeypatch, W.WeightsEntry(
        name="test-pinned", url="https://huggingface.co/yzd-v/DWPose/resolve/main/test-pinned.pth",
        filename="test-pinned.pth", model="dwpose-t", sha256=digest, source="huggingface", kind="pth",
        size=len(data)))
    monkeypatch.setenv(W.MIRROR_ENV, server.url("/mirror/{source}"))
    server.routes["/mirror/huggingface/test-pinned.pth"] = (data, "ok")
    p = W.resolve_weights("test-pinned", progress=False)
    assert p == W.cached_path(entry) and W.sha256_file(p) == digest
    _assert_loads_equal(p, state)
    assert W.resolve_weights("test-pinned") == p and len(server.requests) == 1  # verified once, then cached
    # the same bytes against a size one byte off: refused before the hash, nothing replaced
    p.unlink()
    _register(monkeypatch, dataclasses.replace(entry, size=len(data) + 1))
    with pytest.raises(ChecksumError) as ei:
        W.resolve_weights("test-pinned", progress=False)
    msg = str(ei.value)
    assert f"{len(data)} bytes received, expected {len(data) + 1} bytes" in msg
    assert "nothing was written" in msg and _leftovers(W.cache_dir()) == []
    # download() takes the size too
    with pytest.raises(ChecksumError, match="bytes received, expected 7 bytes"):
        W.download(server.url("/mirror/huggingface/test-pinned.pth"), W.cache_dir() / "x.pth", size=7,
                   progress=False)


def test_download_into_unwritable_cache(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    monkeypatch.setenv(W.CACHE_ENV, str(blocker / "cache"))  # parent is a file
    monkeypatch.setenv(W.MIRROR_ENV, "http://127.0.0.1:1")
    with pytest.raises(WeightsError, match=W.CACHE_ENV):
        W.resolve_weights("dwpose-t")


# ----------------------------------------------------------------------------- load_checkpoint


def test_load_checkpoint_wrong_variant_names_it(tmp_path):
    torch.manual_seed(1)
    p = tmp_path / "s.pth"
    torch.save({"meta": {}, "state_dict": build_model("dwpose-s").state_dict()}, p)
    with pytest.raises(WeightsError) as ei:
        load_checkpoint(build_model("dwpose-t"), p)
    msg = str(ei.value)
    assert "dwpose-t" in msg and "dwpose-s" in msg and "size mismatch" in msg


def test_load_checkpoint_truncated_and_empty(ckpt, tmp_path):
    _, data, _, _ = ckpt
    t = tmp_path / "trunc.pth"
    t.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="cannot read checkpoint"):
        load_checkpoint(build_model("dwpose-t"), t)
    e = tmp_path / "empty.pth"
    e.write_bytes(b"")
    with pytest.raises(WeightsError, match="cannot read checkpoint"):
        load_checkpoint(build_model("dwpose-t"), e)
    with pytest.raises(WeightsError, match="not found"):
        load_checkpoint(build_model("dwpose-t"), tmp_path / "absent.pth")


_CALLS: list = []


def _side_effect(tag: str) -> str:
    _CALLS.append(tag)
    return tag


class _Evil:
    def __reduce__(self):
        return (_side_effect, ("executed",))


def test_load_checkpoint_refuses_arbitrary_pickles(tmp_path):
    state = build_model("dwpose-t").state_dict()
    p = tmp_path / "evil.pth"
    torch.save({"meta": {"hook": _Evil()}, "state_dict": state}, p)
    _CALLS.clear()
    with pytest.raises(WeightsError) as ei:
        load_checkpoint(build_model("dwpose-t"), p)
    assert "refused on purpose" in str(ei.value)
    assert _CALLS == []  # nothing from the pickle ran


def test_load_checkpoint_distiller_student(tmp_path):
    torch.manual_seed(2)
    student = build_model("dwpose-t").state_dict()
    teacher = build_model("dwpose-s").state_dict()  # other shapes: must be ignored
    sd = {f"student.{k}": v for k, v in student.items()}
    sd.update({f"teacher.{k}": v for k, v in teacher.items()})
    sd["distill_losses.loss_fea.align.weight"] = torch.zeros(512, 384, 1, 1)
    p = tmp_path / "distill.pth"
    torch.save({"meta": {"epoch": 270}, "state_dict": sd}, p)
    model = load_checkpoint(build_model("dwpose-t"), p)
    got = model.state_dict()
    for k, v in student.items():
        assert torch.equal(got[k], v), k
    x = torch.zeros(1, 3, 256, 192)
    with torch.no_grad():
        sx, sy = model(x)
    assert tuple(sx.shape) == (1, 133, 384) and tuple(sy.shape) == (1, 133, 512)
