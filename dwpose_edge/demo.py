"""`dwpose-edge demo`: the first pictures a new user sees.

With a network, the official DWPose-t (Hugging Face `dw-tt_ucoco.pth`, sha256-pinned, fetched once into the
weights cache) draws the bundled real photos. The embedded model was trained on generated people only and
fails on real portraits, so it draws a generated validation image on its ground-truth boxes, where it works;
offline, that is the only drawing and one line says how to get real-photo results.
"""
from __future__ import annotations

import importlib.util
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from .data import DATA_DIR
from .draw import draw
from .embedded import EMBEDDED, embedded_meta, embedded_val_set
from .errors import ChecksumError, WeightsError
from .estimator import Estimator
from .evaluation.annotations import load_wholebody_instances
from .predict import read_image
from .weights import cached_path, get_entry, resolve_weights

DEMO_WEIGHTS = "dwpose-t-hf"  # what ControlNet/ComfyUI users download; full sha256 pinned in the registry
PHOTOS = ("astronaut.jpg", "grace_hopper.jpg")  # real head-and-shoulder portraits bundled with the package


def fetch_official(weights: str = DEMO_WEIGHTS, sha256: Optional[str] = None,
                   timeout: float = 15.0) -> tuple[Optional[Path], str]:
    """(verified local path, "") or (None, why it could not be fetched). A file that arrives but fails its
    hash is not "offline": that ChecksumError propagates."""
    try:
        return resolve_weights(weights, sha256=sha256, timeout=timeout), ""
    except ChecksumError:
        raise
    except WeightsError as exc:
        return None, str(exc).split(". ")[0]


def run_demo(out: str | Path, weights: str = DEMO_WEIGHTS, sha256: Optional[str] = None, offline: bool = False,
             model: str = "dwpose-t", log: Callable[[str], None] = print) -> dict:
    """Write the demo drawings into `out`; return {"official": path or None, "files": [written paths]}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    get_entry(weights)  # an unknown name fails here, before any work
    if offline:
        official, why = None, "--offline given"
    elif importlib.util.find_spec("torch") is None:  # the official files are checkpoints: no fetch without torch
        official, why = None, "the official weights are a PyTorch checkpoint: pip install 'dwpose-edge[torch]'"
    else:
        official, why = fetch_official(weights, sha256)
    written: list[Path] = []
    if official is not None:
        variant = get_entry(weights).model or model
        log(f"model: the official {variant} ({official.name}, sha256-verified, cached at {official})")
        est = Estimator(model=variant, weights=str(official), runtime="torch", flip_test=True)
        for name in PHOTOS:
            written.append(_draw_photo(est, DATA_DIR / name, out / f"{Path(name).stem}_pose.png", log))
    if model not in EMBEDDED:
        raise WeightsError(f"no embedded weights for {model}; embedded: {', '.join(sorted(EMBEDDED))}")
    meta = embedded_meta(model)
    ap = meta.get("embedded_val_ap", {})
    log(f"model: the embedded {model}: {meta.get('note', 'no note')}\n"
        f"  whole-body AP {ap.get('wholebody', float('nan')):.3f}, body {ap.get('body', float('nan')):.3f} on the "
        "embedded generated validation set (docs/MODEL_CARD.md)")
    with warnings.catch_warnings():  # the line above already says which model this is and what it is for
        warnings.filterwarnings("ignore", message=r"dwpose-edge: Estimator\(\) without weights")
        embedded = Estimator(model=model, flip_test=True)
    written.append(_draw_validation(embedded, out, log))
    if official is None:
        entry = get_entry(weights)
        log(f"offline ({why}): drew the embedded model on generated people only; for real-photo results run "
            f"`dwpose-edge demo` once with a network (it fetches the official {entry.model}, sha256-verified) "
            f"or put {entry.filename} at {cached_path(entry)}")
    return {"official": official, "files": written}


def _draw_photo(est: Estimator, path: Path, dest: Path, log: Callable[[str], None]) -> Path:
    """The whole photo as one person's box (the photos are portraits)."""
    image = read_image(path)
    t0 = time.perf_counter()
    result = est(image)
    ms = (time.perf_counter() - t0) * 1000
    cv2.imwrite(str(dest), draw(image, result))
    log(f"{path.name}: {len(result)} person(s), {ms:.0f} ms, drawing -> {dest}")
    return dest


def _draw_validation(est: Estimator, out: Path, log: Callable[[str], None]) -> Path:
    """The generated validation image with the most people, on its ground-truth boxes."""
    ann, images = embedded_val_set()
    per_image: dict[str, list[np.ndarray]] = {}
    for inst in load_wholebody_instances(ann, images):
        per_image.setdefault(inst["image_path"], []).append(inst["bbox_xyxy"])
    busiest = max(sorted(per_image), key=lambda k: len(per_image[k]))
    image = read_image(busiest)
    result = est(image, np.stack(per_image[busiest]))
    dest = out / f"val_{Path(busiest).stem}_pose.png"
    cv2.imwrite(str(dest), draw(image, result, score_threshold=float("-inf")))
    log(f"generated validation image {Path(busiest).name}: {len(result)} person(s) on their ground-truth "
        f"boxes, drawing -> {dest}")
    return dest
