"""Presets: a pose model and a person detector for real photos, by one name (`Estimator.from_preset`, `--preset`).

Modelled on rtmlib's Wholebody modes (performance / balanced / lightweight), with DWPose pose models:

- performance: dwpose-l-384 (288x384 crops) from dwpose-l-384-hf-onnx (dw-ll_ucoco_384.onnx, 134 MB) with the
  detector yolox-l-hf-onnx (yolox_l.onnx, 640x640, 217 MB); no PyTorch needed.
- balanced: dwpose-m (192x256) from dwpose-m-hf (dw-mm_ucoco.pth, 217 MB) with yolox-m-humanart (OpenMMLab SDK
  zip, 640x640); needs PyTorch.
- lightweight: dwpose-t (192x256) from dwpose-t-hf (dw-tt_ucoco.pth) with yolox-tiny-humanart (SDK zip, 416x416);
  needs PyTorch.

'performance' is the pair DWPose's own demo runs (Hugging Face yzd-v/DWPose), both ONNX: it runs on the torch-free
core. 'balanced' and 'lightweight' pair DWPose-m / -t with the OpenMMLab YOLOX-m / -tiny detectors trained on
HumanArt, as rtmlib does; their pose weights are the .pth files of the same Hugging Face repository, exported to
ONNX on first use and cached (a checkpoint needs PyTorch: ``pip install 'dwpose-edge[export]'``). The detector
input sizes are read from the files (the SDK zips' pipeline.json).

Verification: the Hugging Face files are pinned to their full sha256 (and byte size where recorded) in
`dwpose_edge.weights.REGISTRY`. OpenMMLab publishes no hash of its SDK zips (the 8 hex digits in their names belong
to the source checkpoints), so the two HumanArt detectors are trust-on-first-use entries: the first download is
recorded and every later use is verified against that record (see `dwpose_edge.weights`).

Everything is fetched once into the weights cache (``$DWPOSE_EDGE_CACHE``, a mirror from
``$DWPOSE_EDGE_WEIGHTS_URL``); offline, one error names every missing file, where to get it and where to put it.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ChecksumError, InputError, RuntimeUnavailableError, WeightsError
from .weights import REGISTRY, resolve_weights

__all__ = ["Preset", "PRESETS", "get_preset", "fetch_preset", "preset_arguments"]


@dataclass(frozen=True)
class Preset:
    """A pose model, the registry name of its weights, the registry name of a person detector, a runtime."""

    name: str
    model: str
    weights: str
    detector: str
    runtime: str = "onnxruntime"

    @property
    def needs_torch(self) -> bool:
        """True when the pose weights are a PyTorch checkpoint: reading it (and its ONNX export on first use,
        cached) needs torch."""
        return REGISTRY[self.weights].kind == "pth"


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("performance", "dwpose-l-384", "dwpose-l-384-hf-onnx", "yolox-l-hf-onnx"),
        Preset("balanced", "dwpose-m", "dwpose-m-hf", "yolox-m-humanart"),
        Preset("lightweight", "dwpose-t", "dwpose-t-hf", "yolox-tiny-humanart"),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called `name`; the error lists every preset."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None


def fetch_preset(preset: Preset | str, *, weights: bool = True, detector: bool = True,
                 progress: bool = True) -> dict[str, Path]:
    """Download (once) and verify the files of a preset: {registry name: cached path}.

    Every file is tried before anything is raised, so that offline one WeightsError names all the missing files,
    each with its official URL and the cache path to put it at (the downloader's own message). A file that
    arrives but fails its hash raises its ChecksumError at once."""
    if isinstance(preset, str):
        preset = get_preset(preset)
    names = ([preset.weights] if weights else []) + ([preset.detector] if detector else [])
    paths: dict[str, Path] = {}
    failed: list[str] = []
    for name in names:
        try:
            paths[name] = resolve_weights(name, progress=progress)
        except ChecksumError:
            raise
        except WeightsError as exc:
            failed.append(f"[{name}: {REGISTRY[name].filename}] {exc}")
    if failed:
        raise WeightsError(f"preset {preset.name!r} needs {len(failed)} file(s) that are not in the cache and "
                           f"could not be downloaded: " + " ".join(failed))
    return paths


def preset_arguments(name: str, overrides: dict[str, Any], options: Iterable[str], progress: bool = True
                     ) -> dict[str, Any]:
    """The `Estimator` keyword arguments of preset `name` after `overrides` (any of the Estimator's `options`:
    runtime, precision, threads, detector...), with the preset's files fetched and verified first.

    A file the overrides replace is not fetched (`weights` or `model_dir` for the pose model, `detector`)."""
    preset = get_preset(name)
    options = set(options)
    unknown = sorted(set(overrides) - options)
    if unknown:
        raise InputError(f"unknown Estimator option(s) {unknown} for preset {name!r}; options: "
                         f"{', '.join(sorted(options))}")
    own_weights = "weights" not in overrides and "model_dir" not in overrides
    if own_weights and preset.needs_torch and importlib.util.find_spec("torch") is None:
        entry = REGISTRY[preset.weights]
        raise RuntimeUnavailableError(
            f"preset {name!r} runs {preset.model} from its PyTorch checkpoint {entry.filename} (exported to ONNX "
            "on first use and cached), which needs PyTorch: pip install 'dwpose-edge[export]' (on x86-64 the CPU wheel "
            "first: pip install torch --index-url https://download.pytorch.org/whl/cpu); or use preset "
            "'performance', which runs without it")
    fetch_preset(preset, weights=own_weights, detector="detector" not in overrides, progress=progress)
    arguments: dict[str, Any] = {"model": preset.model, "weights": preset.weights, "detector": preset.detector,
                                 "runtime": preset.runtime}
    arguments.update(overrides)
    return arguments
