"""Registry of the released DWPose weights, a verifying downloader and a local cache.

Registry
--------
`REGISTRY` maps a name to a `WeightsEntry`:

* ``dwpose-t``, ``dwpose-s``, ``dwpose-m``, ``dwpose-l``, ``dwpose-l-384``: the
  official OpenMMLab mmpose checkpoints (``rtmpose-*_simcc-ucoco_dw-ucoco_270e-*.pth``).
  Their filenames carry the first 8 hex digits of the file's sha256, which is what
  they are verified against (a prefix check; no full hash is published).
* ``dwpose-t-hf`` ... ``dwpose-l-384-hf``, ``dwpose-l-384-hf-onnx``, ``yolox-l-hf-onnx``:
  the files of the Hugging Face repository ``yzd-v/DWPose``, pinned to the full
  sha256 and byte size of their Git LFS pointers (commit f7c16a3; no size is
  recorded for ``dw-tt_ucoco.pth``). Their ``.pth`` files are mmengine training
  checkpoints; `dwpose_edge.models.checkpoint` reads them weights-only.
* ``yolox-tiny-humanart``, ``yolox-m-humanart``, ``yolox-x-humanart`` (person
  detectors) and ``rtmw-m-256x192``, ``rtmw-l-256x192``, ``rtmw-l-384x288`` (RTMW
  whole-body pose models, named by architecture: ``rtmw-dw-l-m_*`` is RTMW-m
  distilled from RTMW-l, ``rtmw-dw-x-l_*`` RTMW-l distilled from RTMW-x): OpenMMLab's mmdeploy SDK zips (``onnx_sdk/*.zip``:
  ``end2end.onnx`` + ``pipeline.json`` + ``deploy.json``, opened by
  `dwpose_edge.sdk_zip`). No hash of these zips is published (the 8 hex digits in
  the detector names belong to the source checkpoints, not to the zips), so they
  are *trust on first use* entries, below.

Every pinned entry is verified by default: a download is checked against the
entry's size (when known) and hash before it is renamed into the cache, and a
cached copy is checked the first time it is used in a process. ``resolve_weights(name,
sha256=...)`` replaces the pinned hash (and drops the pinned size) for a mirror
that serves a different build of the file.

Trust on first use (entries with ``tofu=True`` and no hash): the first download
is accepted as served (still checked against the Content-Length), its sha256 is
recorded next to it in ``<cache>/<filename>.sha256`` (written before the file is
renamed into place) and logged at WARNING level with the ``sha256=`` to pin it;
from then on the cached file is verified against that record the first time it is
used in a process, exactly like a pinned file (a mismatch is a ChecksumError, the
file is never deleted silently). A cached file without a record (put there by
hand) is recorded the same way on first use. Pass ``sha256=`` to verify against
your own pin instead, on the first download as on every later use.

Environment
-----------
``DWPOSE_EDGE_CACHE``
    Cache directory (default ``~/.cache/dwpose_edge``). Files are stored flat
    under their release filename: ``<cache>/<filename>``.
``DWPOSE_EDGE_WEIGHTS_URL``
    Mirror base URL replacing every entry's official location: the file is fetched
    from ``<base>/<filename>``. ``{source}`` in the value is replaced by the entry's
    source (``openmmlab`` / ``huggingface``) for mirrors that keep them apart.
    ``http://``, ``https://`` and ``file://`` are accepted.

Safety: this module only streams and hashes bytes; it never unpickles anything.
Checkpoints are loaded by `dwpose_edge.models.load_checkpoint` with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

from tqdm.auto import tqdm

from .errors import ChecksumError, InputError, WeightsError
from .hashing import sha256_file

__all__ = [
    "WeightsEntry", "REGISTRY", "CACHE_ENV", "MIRROR_ENV", "DEFAULT_TIMEOUT",
    "cache_dir", "get_entry", "list_weights", "weights_for_model", "entry_url", "cached_path",
    "sha256_file", "sha256_from_filename", "verify_file", "download", "resolve_weights", "recorded_sha256",
    "cached_sha256",
]

log = logging.getLogger(__name__)

CACHE_ENV = "DWPOSE_EDGE_CACHE"
MIRROR_ENV = "DWPOSE_EDGE_WEIGHTS_URL"
DEFAULT_TIMEOUT = 30.0  # seconds without data before a download gives up (per socket operation)
_CHUNK = 1 << 20

_OPENMMLAB_BASE = "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/"
_OPENMMLAB_SDK = "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/onnx_sdk/"
_RTMW_SDK = "https://download.openmmlab.com/mmpose/v1/projects/rtmw/onnx_sdk/"
_HF_BASE = "https://huggingface.co/yzd-v/DWPose/resolve/main/"
# Kept in sync with dwpose_edge.specs.MODEL_SPECS (a test checks it); not imported so
# that this module works without torch (e.g. for ONNX-only use).
_VARIANTS = ("dwpose-t", "dwpose-s", "dwpose-m", "dwpose-l", "dwpose-l-384")
# ... and dwpose_edge.specs.RTMW_SPECS (a test checks it too): whole-body models run from their ONNX only
_ONNX_VARIANTS = ("rtmw-m-256x192", "rtmw-l-256x192", "rtmw-l-384x288")
_SOURCES = ("openmmlab", "huggingface")
_KINDS = ("pth", "onnx", "zip")
_RECORD = ".sha256"  # suffix of the trust-on-first-use record next to a cached file
_HEX = re.compile(r"^[0-9a-f]+$")
# OpenMMLab naming: <stem>-<first 8 hex of sha256>_<yyyymmdd>.pth  (or without the date)
_OPENMMLAB_HASH = re.compile(r"-([0-9a-f]{8})(?:_\d{8})?\.[A-Za-z0-9]+$")

PathLike = Union[str, "os.PathLike[str]"]


def _normalize_sha256(value: str, what: str = "sha256") -> str:
    """Lower-case hex; 64 digits (full hash) or 8..63 (prefix). Anything else is an error."""
    if not isinstance(value, str):
        raise WeightsError(f"{what} must be a hex string, got {type(value).__name__}")
    v = value.strip().lower()
    if v.startswith("sha256:"):
        v = v[len("sha256:"):]
    if not _HEX.match(v) or not 8 <= len(v) <= 64:
        raise WeightsError(f"{what} {value!r} is not a sha256: expected 64 hex digits, "
                           "or a prefix of at least 8 hex digits")
    return v


def sha256_from_filename(filename: str) -> Optional[str]:
    """The 8-hex sha256 prefix of an OpenMMLab-style filename (``...-dcf277bf_20230728.pth``), or None."""
    m = _OPENMMLAB_HASH.search(os.path.basename(filename))
    return m.group(1) if m else None


@dataclass(frozen=True)
class WeightsEntry:
    """One released file.

    `sha256` is the full hex digest when it is published, else an 8-hex prefix (OpenMMLab
    files carry one in their filename), else None with `tofu=True` (trust on first use, see
    the module doc). `size` is the file's byte count when published. `model` is the pose
    model the file fits (None for person detectors).
    """

    name: str
    url: str
    filename: str
    model: Optional[str]
    sha256: Optional[str]
    source: str  # "openmmlab" | "huggingface"
    kind: str  # "pth" | "onnx" | "zip"
    size: Optional[int] = None
    tofu: bool = False

    def __post_init__(self) -> None:
        if self.source not in _SOURCES:
            raise InputError(f"{self.name}: source must be one of {_SOURCES}, got {self.source!r}")
        if self.kind not in _KINDS:
            raise InputError(f"{self.name}: kind must be one of {_KINDS}, got {self.kind!r}")
        if not self.filename.endswith("." + self.kind):
            raise InputError(f"{self.name}: filename {self.filename!r} does not end with .{self.kind}")
        if os.path.basename(self.filename) != self.filename:
            raise InputError(f"{self.name}: filename {self.filename!r} must be a bare file name")
        if not self.url.endswith("/" + self.filename):
            raise InputError(f"{self.name}: url {self.url!r} does not end with /{self.filename}")
        if self.model is not None and self.model not in _VARIANTS + _ONNX_VARIANTS:
            raise InputError(f"{self.name}: unknown model variant {self.model!r}; choose one of "
                             f"{_VARIANTS + _ONNX_VARIANTS}")
        if self.tofu:
            if self.sha256 is not None:
                raise InputError(f"{self.name}: a trust-on-first-use entry has no sha256; drop tofu=True to pin it")
            return
        if self.sha256 is None:
            raise InputError(f"{self.name}: sha256 is required (a full digest or the 8-hex prefix of an "
                             "OpenMMLab filename); every registry file is verified (only an entry marked "
                             "tofu=True, for files without any published hash, is trusted on first use)")
        object.__setattr__(self, "sha256", _normalize_sha256(self.sha256, f"{self.name}: sha256"))
        in_name = sha256_from_filename(self.filename)
        if in_name is not None and not (self.sha256.startswith(in_name) or in_name.startswith(self.sha256)):
            raise InputError(f"{self.name}: sha256 {self.sha256} contradicts the {in_name} in the filename")
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1):
            raise InputError(f"{self.name}: size must be a positive byte count or None, got {self.size!r}")

    @property
    def sha256_is_prefix(self) -> bool:
        return self.sha256 is not None and len(self.sha256) < 64


def _openmmlab(name: str, filename: str) -> WeightsEntry:
    return WeightsEntry(name=name, url=_OPENMMLAB_BASE + filename, filename=filename, model=name,
                        sha256=sha256_from_filename(filename), source="openmmlab", kind="pth")


def _hf(name: str, filename: str, model: Optional[str], sha256: str, size: Optional[int]) -> WeightsEntry:
    kind = filename.rsplit(".", 1)[1]
    return WeightsEntry(name=name, url=_HF_BASE + filename, filename=filename, model=model,
                        sha256=sha256, source="huggingface", kind=kind, size=size)


def _sdk(name: str, base: str, filename: str, model: Optional[str]) -> WeightsEntry:
    return WeightsEntry(name=name, url=base + filename, filename=filename, model=model, sha256=None,
                        source="openmmlab", kind="zip", tofu=True)


REGISTRY: Dict[str, WeightsEntry] = {
    e.name: e
    for e in (
        _openmmlab("dwpose-t", "rtmpose-t_simcc-ucoco_dw-ucoco_270e-256x192-dcf277bf_20230728.pth"),
        _openmmlab("dwpose-s", "rtmpose-s_simcc-ucoco_dw-ucoco_270e-256x192-3fd922c8_20230728.pth"),
        _openmmlab("dwpose-m", "rtmpose-m_simcc-ucoco_dw-ucoco_270e-256x192-c8b76419_20230728.pth"),
        _openmmlab("dwpose-l", "rtmpose-l_simcc-ucoco_dw-ucoco_270e-256x192-4d6dfc62_20230728.pth"),
        _openmmlab("dwpose-l-384", "rtmpose-l_simcc-ucoco_dw-ucoco_270e-384x288-2438fd99_20230728.pth"),
        # Hugging Face yzd-v/DWPose: sha256 and size of the Git LFS pointers at commit f7c16a3
        # (dw-tt_ucoco.pth's size, ~68 MB, is not recorded).
        _hf("dwpose-t-hf", "dw-tt_ucoco.pth", "dwpose-t",
            "7097f5af7f100609acffe58eb01734f02ffbfe22794fe029c2ea0a4d68d0f42d", None),
        _hf("dwpose-s-hf", "dw-ss_ucoco.pth", "dwpose-s",
            "c13dfb1dc63aac2d794ac130bb89734330b3c74a1aff921a40fcde1d87361ffc", 102933707),
        _hf("dwpose-m-hf", "dw-mm_ucoco.pth", "dwpose-m",
            "b24f27f57d18d8bb7abc3af8e09bcc5f77ee9ecae13439f70a8f7d1b885413cf", 216812378),
        _hf("dwpose-l-hf", "dw-ll_ucoco.pth", "dwpose-l",
            "e9600664e7927229ed594197d552023e3be213f810beb38847a959ec8261e0f7", 404734742),
        _hf("dwpose-l-384-hf", "dw-ll_ucoco_384.pth", "dwpose-l-384",
            "0d9408b13cd863c4e95a149dd31232f88f2a12aa6cf8964ed74d7d97748c7a07", 406878486),
        _hf("dwpose-l-384-hf-onnx", "dw-ll_ucoco_384.onnx", "dwpose-l-384",
            "724f4ff2439ed61afb86fb8a1951ec39c6220682803b4a8bd4f598cd913b1843", 134399116),
        # the person detector DWPose's demo uses
        _hf("yolox-l-hf-onnx", "yolox_l.onnx", None,
            "7860ae79de6c89a3c1eb72ae9a2756c0ccfbe04b7791bb5880afabd97855a411", 216746733),
        # OpenMMLab mmdeploy SDK zips (no published hash: trust on first use)
        _sdk("yolox-tiny-humanart", _OPENMMLAB_SDK, "yolox_tiny_8xb8-300e_humanart-6f3252f9.zip", None),
        _sdk("yolox-m-humanart", _OPENMMLAB_SDK, "yolox_m_8xb8-300e_humanart-c2c7a14a.zip", None),
        _sdk("yolox-x-humanart", _OPENMMLAB_SDK, "yolox_x_8xb8-300e_humanart-a39d44ed.zip", None),
        # RTMW whole-body, named by architecture: rtmw-dw-l-m is RTMW-m distilled from RTMW-l, rtmw-dw-x-l is
        # RTMW-l distilled from RTMW-x (mmpose configs/wholebody_2d_keypoint/rtmpose/cocktail14/rtmw_cocktail14.yml)
        _sdk("rtmw-m-256x192", _RTMW_SDK, "rtmw-dw-l-m_simcc-cocktail14_270e-256x192_20231122.zip", "rtmw-m-256x192"),
        _sdk("rtmw-l-256x192", _RTMW_SDK, "rtmw-dw-x-l_simcc-cocktail14_270e-256x192_20231122.zip", "rtmw-l-256x192"),
        _sdk("rtmw-l-384x288", _RTMW_SDK, "rtmw-dw-x-l_simcc-cocktail14_270e-384x288_20231122.zip", "rtmw-l-384x288"),
    )
}


# ----------------------------------------------------------------------------- lookups


def cache_dir() -> Path:
    """The weights cache: ``$DWPOSE_EDGE_CACHE`` if set, else ``~/.cache/dwpose_edge`` (not created here)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dwpose_edge"


def list_weights() -> list:
    """Registry names, sorted."""
    return sorted(REGISTRY)


def get_entry(name: str) -> WeightsEntry:
    """The registry entry called `name`; the error lists every valid name."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise WeightsError(f"unknown weights {name!r}; registry names: {', '.join(list_weights())}"
                           " (or give the path of a local file)") from None


def weights_for_model(model: str, source: str = "openmmlab", kind: str = "pth") -> WeightsEntry:
    """The entry holding weights for a variant (default: the OpenMMLab .pth)."""
    for e in REGISTRY.values():
        if e.model == model and e.source == source and e.kind == kind:
            return e
    raise WeightsError(f"no {source} {kind} weights for model {model!r}; variants: "
                       f"{', '.join(_VARIANTS + _ONNX_VARIANTS)}")


def entry_url(entry: WeightsEntry) -> str:
    """Where `entry` is fetched from: its official URL, or ``$DWPOSE_EDGE_WEIGHTS_URL/<filename>``."""
    base = os.environ.get(MIRROR_ENV, "").strip()
    if not base:
        return entry.url
    base = base.replace("{source}", entry.source)
    if not base.lower().startswith(("http://", "https://", "file://")):
        raise WeightsError(f"{MIRROR_ENV}={base!r} is not an http(s):// or file:// base URL")
    return base.rstrip("/") + "/" + entry.filename


def cached_path(entry: Union[WeightsEntry, str]) -> Path:
    """Where the file of `entry` (or registry name) lives in the cache, present or not."""
    if isinstance(entry, str):
        entry = get_entry(entry)
    return cache_dir() / entry.filename


# ----------------------------------------------------------------------------- hashing


def _matches(digest: str, expected: str) -> bool:
    return digest == expected if len(expected) == 64 else digest.startswith(expected)


def _describe(expected: str) -> str:
    return f"sha256 {expected}" if len(expected) == 64 else f"sha256 prefix {expected}"


# (resolved path, size, mtime_ns, expected) of files already verified in this process.
_VERIFIED: set = set()


def _stat_key(path: Path, expected: str) -> Tuple[str, int, int, str]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, expected)


def verify_file(path: PathLike, sha256: str) -> str:
    """Check a file against a full sha256 or a prefix; return its full digest or raise ChecksumError."""
    expected = _normalize_sha256(sha256)
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"cannot verify {p}: no such file")
    digest = sha256_file(p)
    if not _matches(digest, expected):
        raise ChecksumError(f"{p} has sha256 {digest}, expected {_describe(expected)}")
    return digest


# ----------------------------------------------------------------------------- download


def _manual_hint(url: str, dest: Path) -> str:
    return (f"Download it yourself from {url} and put it at {dest} "
            f"(the cache directory comes from ${CACHE_ENV}, a mirror from ${MIRROR_ENV}), "
            "or pass the path of a local copy instead of a registry name.")


def download(url: str, dest: PathLike, sha256: Optional[str] = None, progress: bool = True,
             timeout: float = DEFAULT_TIMEOUT, size: Optional[int] = None) -> Path:
    """Fetch `url` to `dest` atomically and return `dest`.

    The body is streamed into a temporary file next to `dest`, hashed on the way,
    checked against the Content-Length (a short body is an error) and, when `sha256`
    (full hex digest or a prefix of >= 8 hex digits) is given, against the hash, and
    when `size` is given, against that byte count -- all before the ``os.replace``
    that makes `dest` appear. On any failure the temporary file is removed and
    `dest` is left untouched. Network and HTTP failures raise WeightsError naming
    the URL and where to put the file by hand; a wrong size or hash raises
    ChecksumError.
    """
    return _download(url, Path(dest), sha256, progress, timeout, official_url=url, size=size)[0]


def _download(url: str, dest: Path, sha256: Optional[str], progress: bool, timeout: float,
              official_url: str, size: Optional[int] = None, record: bool = False) -> Tuple[Path, str]:
    """`download`, returning (dest, sha256); `record`: write the trust-on-first-use record before the rename."""
    expected = _normalize_sha256(sha256) if sha256 is not None else None
    expected_size = size
    hint = _manual_hint(official_url, dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise WeightsError(f"cannot write to {dest.parent}: {exc}. Set ${CACHE_ENV} to a writable "
                           f"directory. {hint}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, size = _fetch(url, out, progress, timeout, dest.name, hint)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a cache file is ordinary data
        if expected_size is not None and size != expected_size:
            raise ChecksumError(
                f"download of {url} is a different or damaged file: {size} bytes received, expected "
                f"{expected_size} bytes (nothing was written to {dest}). Try again; if it persists the "
                f"server or mirror serves the wrong file. {hint}")
        if expected is not None and not _matches(digest, expected):
            raise ChecksumError(
                f"download of {url} is corrupt or a different file: sha256 {digest}, expected "
                f"{_describe(expected)} ({size} bytes received, nothing was written to {dest}). "
                f"Try again; if it persists the server or mirror serves the wrong file. {hint}")
        if record:
            _write_record(dest, digest)
        os.replace(tmp, dest)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    if expected is None:
        log.info("downloaded %s -> %s (sha256 %s, not verified: no hash given)", url, dest, digest)
    else:
        log.info("downloaded %s -> %s (sha256 %s verified)", url, dest, digest)
    return dest, digest


def _fetch(url: str, out, progress: bool, timeout: float, label: str, hint: str) -> Tuple[str, int]:
    """Stream `url` into the open file `out`; return (sha256 hex, bytes written)."""
    req = urllib.request.Request(url, headers={"User-Agent": "dwpose-edge"})
    h = hashlib.sha256()
    size = 0
    total: Optional[int] = None
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            if length is not None and length.strip().isdigit():
                total = int(length)
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                      disable=not progress, leave=False) as bar:
                read = getattr(resp, "read1", resp.read)  # read1: whatever arrived, no waiting for a full chunk
                while True:
                    chunk = read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise WeightsError(f"download of {url} failed: HTTP {exc.code} {exc.reason}. {hint}") from exc
    except urllib.error.URLError as exc:
        raise WeightsError(f"download of {url} failed: {exc.reason} (offline, blocked or wrong "
                           f"host? behind a proxy, set ${MIRROR_ENV} or HTTPS_PROXY). {hint}") from exc
    except (socket.timeout, TimeoutError) as exc:
        raise WeightsError(f"download of {url} failed: no data for {timeout:g} s "
                           f"(timed out after {size} bytes). {hint}") from exc
    except (HTTPException, OSError) as exc:
        raise WeightsError(f"download of {url} failed after {size} bytes: "
                           f"{type(exc).__name__}: {exc}. {hint}") from exc
    if total is not None and size != total:
        raise WeightsError(f"download of {url} is truncated: received {size} of {total} bytes "
                           f"(connection dropped). Nothing was written. Try again. {hint}")
    return h.hexdigest(), size


# ----------------------------------------------------------------------------- resolve


def resolve_weights(name_or_path: Union[str, "os.PathLike[str]"], *, sha256: Optional[str] = None,
                    progress: bool = True, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Turn a registry name or a local path into the path of a verified local file.

    * A registry name (see `list_weights`) takes precedence over a same-named file
      in the working directory (write ``./dwpose-t`` to mean the file). Its cached
      copy ``cache_dir()/<filename>`` is verified against the hash the first time it
      is used in a process (a mismatch raises ChecksumError telling to delete the
      file; it is never deleted silently), or it is downloaded and verified.
    * Anything else is a local path: it must exist and is returned as given
      (verified too if `sha256` is passed).

    `sha256` (full digest or >= 8-hex prefix) overrides the registry's hash, and then
    the registry's size (which belongs to the pinned file) is not checked.
    """
    if isinstance(name_or_path, str) and name_or_path in REGISTRY:
        return _resolve_entry(REGISTRY[name_or_path], sha256, progress, timeout)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise WeightsError(f"expected a registry name or a file path, got {type(name_or_path).__name__}")
    path = Path(name_or_path)
    if path.is_file():
        if sha256 is not None:
            verify_file(path, sha256)
        return path
    if path.exists():
        raise WeightsError(f"{path} is not a file")
    raise WeightsError(f"weights {os.fspath(name_or_path)!r} not found: it is neither an existing file nor a "
                       f"registry name ({', '.join(list_weights())})")


def _resolve_entry(entry: WeightsEntry, sha256: Optional[str], progress: bool, timeout: float) -> Path:
    expected = _normalize_sha256(sha256) if sha256 is not None else entry.sha256
    size = entry.size if sha256 is None else None
    dest = cached_path(entry)
    tofu = expected is None  # a trust-on-first-use entry and no pin from the user
    if tofu:
        expected = recorded_sha256(dest)
    if dest.is_file():
        key = _stat_key(dest, expected or "")
        if key not in _VERIFIED:
            bad = f"it is corrupt, truncated or a different file. Delete it (rm '{dest}') and run again to " \
                  "download it anew."
            if size is not None and key[1] != size:  # no need to hash hundreds of MB to tell
                raise ChecksumError(f"cached {entry.name} file {dest} has {key[1]} bytes, expected {size} bytes: "
                                    + bad)
            digest = sha256_file(dest)
            if expected is None:
                _write_record(dest, digest)
                _trusted(entry, dest, digest, "first use of a cached copy")
                expected = digest
            elif not _matches(digest, expected):
                if tofu:
                    raise ChecksumError(
                        f"cached {entry.name} file {dest} has sha256 {digest}, but {expected} was recorded at its "
                        f"first download ({_record_path(dest)}): the file changed since. Delete both "
                        f"(rm '{dest}' '{_record_path(dest)}') to download it anew and trust that copy, or pass "
                        "sha256= with the digest you expect.")
                raise ChecksumError(
                    f"cached {entry.name} file {dest} has sha256 {digest}, expected {_describe(expected)}: " + bad)
            _VERIFIED.add(_stat_key(dest, expected))
            _DIGESTS[_stat_key(dest, "")] = digest
        return dest
    try:
        _, digest = _download(entry_url(entry), dest, expected, progress, timeout, official_url=entry.url,
                              size=size, record=tofu and expected is None)
    except ChecksumError as exc:
        if tofu and expected is not None:
            raise ChecksumError(f"{exc} The sha256 expected was recorded at the first download of {entry.name} "
                                f"({_record_path(dest)}); delete that record to trust the file served now.") from None
        raise
    if tofu and expected is None:
        _trusted(entry, dest, digest, "first download")
    _VERIFIED.add(_stat_key(dest, expected or digest))
    _DIGESTS[_stat_key(dest, "")] = digest
    return dest


# (resolved path, size, mtime_ns, "") -> full sha256 of files hashed in this process
_DIGESTS: Dict[Tuple[str, int, int, str], str] = {}


def cached_sha256(path: PathLike) -> Optional[str]:
    """The full sha256 of `path` if this process hashed it while resolving weights (and it is unchanged since),
    else None: lets callers skip hashing a large file twice."""
    try:
        return _DIGESTS.get(_stat_key(Path(path), ""))
    except OSError:
        return None


# ----------------------------------------------------------------------------- trust on first use


def _record_path(dest: Path) -> Path:
    return dest.with_name(dest.name + _RECORD)


def recorded_sha256(dest: PathLike) -> Optional[str]:
    """The sha256 recorded at the first download of the cached file `dest`, or None if there is no record."""
    record = _record_path(Path(dest))
    try:
        text = record.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise WeightsError(f"cannot read the sha256 record {record}: {exc}; delete it (and {dest}) to download "
                           "anew") from exc
    digest = text.split()[0].lower() if text.split() else ""
    if len(digest) != 64 or not _HEX.match(digest):
        raise WeightsError(f"the sha256 record {record} is malformed ({text[:80]!r}); delete it (and {dest}) to "
                           "download anew")
    return digest


def _write_record(dest: Path, digest: str) -> None:
    """`<digest>  <filename>` (sha256sum's format) next to `dest`, written atomically."""
    record = _record_path(dest)
    tmp = record.with_name(f".{record.name}.{os.getpid()}.part")
    try:
        tmp.write_text(f"{digest}  {dest.name}\n", encoding="ascii")
        os.replace(tmp, record)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WeightsError(f"cannot write the sha256 record {record}: {exc}; set ${CACHE_ENV} to a writable "
                           "directory") from exc


def _trusted(entry: WeightsEntry, dest: Path, digest: str, what: str) -> None:
    log.warning("%s: no sha256 is published for %s; trusted on %s: sha256 %s (recorded in %s; later uses are "
                "verified against it). To pin it: resolve_weights(%r, sha256=%r)",
                entry.name, entry.filename, what, digest, _record_path(dest), entry.name, digest)
