"""`manifest.json` of an exported model folder: what is in it, its hashes, tool versions and validation figures."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from dwpose_edge.errors import ModelFileError
from dwpose_edge.hashing import sha256_file
from dwpose_edge.onnx_file import ensure_checked

MANIFEST = "manifest.json"
FORMAT = "dwpose-edge-model/1"
TOOLS = ("dwpose-edge", "torch", "onnx", "onnxruntime", "onnxsim", "openvino", "nncf", "ncnn", "pnnx", "numpy",
         "ai-edge-litert", "litert-torch", "ai-edge-quantizer")


def tool_versions(names=TOOLS) -> dict[str, str]:
    """Installed versions of the named distributions (missing ones are left out)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


@dataclass
class Artifact:
    """One runtime x precision in the folder: role -> file name (e.g. {'param': ..., 'bin': ...})."""

    runtime: str
    precision: str
    files: dict[str, str]
    sha256: dict[str, str] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def paths(self, folder: Path) -> dict[str, Path]:
        return {role: folder / name for role, name in self.files.items()}


@dataclass
class Manifest:
    model: str
    input_size: tuple[int, int]
    artifacts: list[Artifact]
    info: dict[str, Any] = field(default_factory=dict)

    def find(self, runtime: str, precision: str) -> Artifact:
        for a in self.artifacts:
            if a.runtime == runtime and a.precision == precision:
                return a
        have = ", ".join(f"{a.runtime}/{a.precision}" for a in self.artifacts) or "nothing"
        raise ModelFileError(f"the model folder has no {runtime}/{precision} export (it has {have}); "
                             f"export it with: dwpose-edge export --model {self.model} --to {runtime} --precision {precision}")


def write_manifest(folder: str | os.PathLike, manifest: Manifest) -> Path:
    """Hash every artifact file and write manifest.json atomically."""
    folder = Path(folder)
    for a in manifest.artifacts:
        a.sha256 = {role: sha256_file(folder / name) for role, name in a.files.items()}
    doc = {"format": FORMAT, "model": manifest.model, "input_size": list(manifest.input_size),
           **manifest.info, "versions": tool_versions(),
           "artifacts": [a.__dict__ for a in manifest.artifacts]}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False))
    os.replace(tmp, folder / MANIFEST)
    return folder / MANIFEST


def read_manifest(folder: str | os.PathLike) -> Manifest:
    """Parse manifest.json; ModelFileError if it is missing, malformed or names files outside the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFileError(f"model folder {folder} does not exist or is not a folder; give the --out folder of "
                             "`dwpose-edge export`")
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelFileError(f"{folder} has no {MANIFEST}: not a folder written by `dwpose-edge export` "
                             "(or the export did not finish); export it again")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError(f"the top level is a {type(doc).__name__}, expected an object")
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT!r}")
        if not isinstance(doc["model"], str):
            raise ValueError(f"model {doc['model']!r} is not a name")
        arts = [_artifact(a) for a in doc["artifacts"]]
        info = {k: v for k, v in doc.items() if k not in ("format", "model", "input_size", "artifacts")}
        return Manifest(doc["model"], _input_size(doc["input_size"]), arts, info)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"{path} is malformed ({type(exc).__name__}: {exc}); export the folder again") from exc


def _input_size(value: Any) -> tuple[int, int]:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"input_size {value!r} is not [W, H]")
    return value[0], value[1]


def _artifact(entry: Any) -> Artifact:
    """One artifact entry, with file names that must be plain names inside the folder (no paths, no '..')."""
    if not isinstance(entry, dict):
        raise ValueError(f"artifact {entry!r} is not an object")
    art = Artifact(**entry)
    for table in ("files", "sha256"):
        value = getattr(art, table)
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValueError(f"{art.runtime}/{art.precision} {table} must map roles to strings, got {value!r}")
    for name in art.files.values():
        if name in ("", ".", "..") or Path(name).name != name or "\\" in name:
            raise ValueError(f"file name {name!r} is not a plain name inside the model folder")
    return art


def verified_paths(folder: str | os.PathLike, artifact: Artifact) -> dict[str, Path]:
    """Paths of an artifact's files after checking each one's sha256 against the manifest, and an .onnx among them
    with `onnx_file.ensure_checked` (in full the first time this machine sees its hash)."""
    folder = Path(folder)
    paths = artifact.paths(folder)
    for role, p in paths.items():
        if not p.is_file():
            raise ModelFileError(f"{p} listed in {folder / MANIFEST} is missing; export the folder again")
        want = artifact.sha256.get(role)
        if want is None:
            raise ModelFileError(f"{folder / MANIFEST} records no sha256 for {artifact.runtime}/{artifact.precision} "
                                 f"{role} ({p.name}), so it cannot be verified; export the folder again")
        got = sha256_file(p)
        if want != got:
            raise ModelFileError(f"{p} does not match its sha256 in {MANIFEST} (expected {want}, got {got}): "
                                 "the file was modified or corrupted; re-export the folder")
        if p.suffix.lower() == ".onnx":
            ensure_checked(p, sha256=got)  # parsed once per machine for this hash (onnx_file)
    return paths
