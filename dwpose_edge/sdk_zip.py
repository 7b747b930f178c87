"""Open an mmdeploy SDK zip (OpenMMLab's `onnx_sdk/*.zip`) safely: three members extracted by name, once.

An SDK zip holds one model folder: `end2end.onnx` (the net `deploy.json` names), `pipeline.json`,
`deploy.json` (and `detail.json`, not needed), at the top level or under one folder. Only those members
are read, each by its name; nothing in the zip decides where anything is written. The whole zip is
refused (ModelFileError naming the member and what is wrong) if any member name is absolute, climbs out
with `..`, uses backslashes or NUL, is a symbolic link or other non-regular file, is encrypted, appears
twice, or if a needed member is missing or larger than its cap (`MAX_ONNX_BYTES`, `MAX_JSON_BYTES`),
counting the bytes actually inflated, not only the sizes the zip declares.

The files are extracted once into ``<cache>/sdk/<zip stem>-<first 16 hex of the zip's sha256>/`` (a
temporary folder renamed into place, so a half-written folder is never used); a later open of the same zip
bytes reuses the folder after checking the extracted sizes against the zip.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelFileError
from .hashing import sha256_file
from .sdk_pipeline import SdkPipeline, parse_sdk
from .weights import cache_dir

MAX_ONNX_BYTES = 2 << 30  # the largest OpenMMLab SDK net (RTMW-x 384x288) is ~0.2 GiB
MAX_JSON_BYTES = 1 << 20
MAX_MEMBERS = 1000
_JSONS = ("pipeline.json", "deploy.json")


@dataclass(frozen=True)
class SdkModel:
    """An extracted SDK model: the ONNX file, its parsed pipeline and the folder holding both."""

    onnx: Path
    pipeline: SdkPipeline
    folder: Path


def is_sdk_zip(path: str | os.PathLike) -> bool:
    """True for a path ending in .zip (what is inside is checked when it is opened)."""
    return os.fspath(path).lower().endswith(".zip")


def open_sdk_zip(path: str | os.PathLike, sha256: str | None = None) -> SdkModel:
    """Extract (once) and parse the SDK zip at `path`. `sha256`: the zip's digest when the caller already
    has it (resolve_weights verified it), else it is computed here."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"SDK zip not found: {path}")
    digest = sha256 or sha256_file(path)
    folder = cache_dir() / "sdk" / f"{_stem(path)}-{digest[:16]}"
    with _open_zip(path) as zf:
        members = _members(zf, path)
        deploy = _load_json(zf, members, "deploy.json", path)
        pipeline = parse_sdk(_load_json(zf, members, "pipeline.json", path), deploy, f"{path}!pipeline.json")
        wanted = (pipeline.onnx_name, *_JSONS)
        for name in wanted:
            _member(members, name, path)
        if not _complete(folder, members, wanted):
            _extract(zf, members, wanted, folder, path)
    return SdkModel(folder / pipeline.onnx_name, pipeline, folder)


def _stem(path: Path) -> str:
    stem = path.name[:-4] if path.name.lower().endswith(".zip") else path.name
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:100] or "sdk"


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelFileError(f"{path} is not a readable zip file (truncated or corrupt?): {exc}; delete it and "
                             "download it again") from exc


def _members(zf: zipfile.ZipFile, path: Path) -> dict[str, zipfile.ZipInfo]:
    """Every member checked; returns base name -> ZipInfo for the files of the model folder."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(f"{path} has {len(infos)} members; an SDK zip has a handful: refused")
    seen: set[str] = set()
    files: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        bad = _unsafe_name(name)
        if bad:
            raise ModelFileError(f"{path}: member {name!r} {bad}: refusing the whole zip (a broken or malicious "
                                 "archive; download it again from the official URL)")
        if name in seen:
            raise ModelFileError(f"{path}: member {name!r} appears twice: refusing the zip (which copy is meant?)")
        seen.add(name)
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            what = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            raise ModelFileError(f"{path}: member {name!r} is {what}: refusing the zip")
        if info.flag_bits & 0x1:
            raise ModelFileError(f"{path}: member {name!r} is encrypted: refusing the zip")
        if info.is_dir():
            continue
        parts = name.split("/")
        if len(parts) > 2:
            continue  # deeper files are not part of the model folder and are never read
        base = parts[-1]
        if base in files:
            raise ModelFileError(f"{path}: two members are named {base!r} ({files[base].filename!r} and {name!r}): "
                                 "refusing the zip (which one is meant?)")
        files[base] = info
    return files


def _unsafe_name(name: str) -> str | None:
    if not name or "\x00" in name:
        return "has an empty or NUL name"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if any(part == ".." for part in name.split("/")):
        return "climbs out of the archive with '..'"
    return None


def _member(members: dict[str, zipfile.ZipInfo], name: str, path: Path) -> zipfile.ZipInfo:
    info = members.get(name)
    if info is None:
        raise ModelFileError(f"{path} has no {name} (members: {sorted(members)}): not an mmdeploy SDK zip, or "
                             "an incomplete one; download it again")
    cap = MAX_ONNX_BYTES if name.endswith(".onnx") else MAX_JSON_BYTES
    if info.file_size > cap:
        raise ModelFileError(f"{path}: {info.filename} declares {info.file_size} bytes, more than the {cap}-byte cap "
                             "for such a file: refusing it")
    return info


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, out, path: Path) -> int:
    """Copy one member to `out`; stops as soon as more than min(cap, declared size) bytes come out."""
    limit = min(cap, info.file_size)
    total = 0
    try:
        with zf.open(info) as src:
            while block := src.read(1 << 20):
                total += len(block)
                if total > limit:
                    raise ModelFileError(f"{path}: {info.filename} inflates to more than the {limit} bytes it "
                                         "declares: refusing it")
                out.write(block)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise ModelFileError(f"{path}: cannot read {info.filename}: {exc} (corrupt zip?); delete it and download "
                             "it again") from exc
    if total != info.file_size:
        raise ModelFileError(f"{path}: {info.filename} gave {total} bytes, the zip declares {info.file_size}")
    return total


def _load_json(zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], name: str, path: Path):
    buf = io.BytesIO()
    _read_capped(zf, _member(members, name, path), MAX_JSON_BYTES, buf, path)
    try:
        return json.loads(buf.getvalue().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: {name} is not valid JSON: {exc}") from exc


def _complete(folder: Path, members: dict[str, zipfile.ZipInfo], wanted: tuple[str, ...]) -> bool:
    """An earlier extraction of these zip bytes, with every file at the size the zip declares."""
    try:
        return all((folder / n).stat().st_size == members[n].file_size for n in wanted)
    except OSError:
        return False


def _extract(zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], wanted: tuple[str, ...], folder: Path,
             path: Path) -> None:
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    except OSError as exc:
        raise ModelFileError(f"cannot write the SDK model folder under {folder.parent}: {exc}; set "
                             "DWPOSE_EDGE_CACHE to a writable folder") from exc
    try:
        for name in wanted:
            info = members[name]
            cap = MAX_ONNX_BYTES if name.endswith(".onnx") else MAX_JSON_BYTES
            with open(tmp / name, "wb") as out:
                _read_capped(zf, info, cap, out, path)
        os.chmod(tmp, 0o755)
        if folder.exists():  # a stale or partial folder of the same bytes: replace it
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not _complete(folder, members, wanted):  # else another process extracted the same bytes first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
