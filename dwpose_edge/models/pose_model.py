"""DWPose top-down model (CSPNeXt + RTMCCHead), `build_model` and mmpose checkpoint loading."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Union

import torch
from torch import nn

from ..embedded import default_weights
from ..errors import WeightsError
from ..specs import MODEL_SPECS, NUM_KEYPOINTS, SIMCC_SPLIT_RATIO, ModelSpec, get_spec
from ..weights import resolve_weights
from .checkpoint import read_checkpoint
from .cspnext import CSPNeXt
from .rtmcc_head import RTMCCHead


class DWPose(nn.Module):
    """Whole-body top-down pose model; `forward(x)` takes normalized RGB (N,3,H,W)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = CSPNeXt(spec.deepen_factor, spec.widen_factor)
        self.head = RTMCCHead(spec.head_in_channels, NUM_KEYPOINTS, spec.input_size, SIMCC_SPLIT_RATIO)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.backbone(x))


def build_model(name: str) -> DWPose:
    """Build a variant (`dwpose-t|s|m|l|l-384`) with mmpose's state-dict layout, in eval mode."""
    return DWPose(get_spec(name)).eval()


StateLike = Union[str, os.PathLike, Mapping[str, torch.Tensor]]


def _read_state_dict(path_or_state: StateLike) -> Mapping[str, torch.Tensor]:
    """The model weights of a checkpoint: its `state_dict` (never `ema_state_dict`), or the mapping itself."""
    if isinstance(path_or_state, Mapping):
        obj = path_or_state
    elif not isinstance(path_or_state, (str, os.PathLike)):
        raise WeightsError(f"weights must be a checkpoint path, a registry name, a state dict or 'random', "
                           f"got {type(path_or_state).__name__}")
    else:
        obj = read_checkpoint(path_or_state)
    if not isinstance(obj, Mapping):
        raise WeightsError(f"checkpoint holds a {type(obj).__name__}, expected a dict of tensors")
    # mmengine checkpoints: the deployable (EMA-swapped) weights are in `state_dict`; Hugging Face
    # DWPose files also carry `ema_state_dict`, which after EMAHook's swap holds the raw weights.
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    return obj


def mmpose_to_model_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep `backbone.*`/`head.*`; a distiller checkpoint's `student.*` is taken, `teacher.*` dropped."""
    keys = list(state)
    if any(k.startswith("student.") for k in keys):
        state = {k[len("student."):]: v for k, v in state.items() if k.startswith("student.")}
    # Distiller extras (feature-projection convs) and the data preprocessor are not part of the model.
    return {k: v for k, v in state.items() if k.startswith(("backbone.", "head."))}


def load_checkpoint(model: nn.Module, path_or_state: StateLike) -> nn.Module:
    """Strictly load an mmpose DWPose/RTMPose checkpoint into `model`; errors list every mismatch."""
    raw = _read_state_dict(path_or_state)
    state = mmpose_to_model_keys(raw)
    if not state:
        sample = ", ".join(list(raw)[:5])
        raise WeightsError(f"checkpoint has no backbone.*/head.* weights (first keys: {sample})")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
        guess = _guess_variant(state)
        lines = [f"checkpoint does not fit {name}"
                 + (f" (it looks like a {guess} checkpoint)" if guess and guess != name else "") + ":"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("size mismatch", mismatched)):
            if items:
                more = f" ... and {len(items) - 8} more" if len(items) > 8 else ""
                lines.append(f"  {title} ({len(items)}): " + "; ".join(items[:8]) + more)
        raise WeightsError("\n".join(lines))
    non_finite = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if non_finite:
        raise WeightsError(f"checkpoint has NaN/inf values in {non_finite[:5]}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
    return model


def _guess_variant(state: Mapping[str, torch.Tensor]) -> str | None:
    """Name the variant whose state-dict shapes match, to make size-mismatch errors actionable."""

    stem = state.get("backbone.stem.0.conv.weight")
    cls_y = state.get("head.cls_y.weight")
    blocks = sum(1 for k in state if k.startswith("backbone.stage1.1.blocks.") and k.endswith("conv1.conv.weight"))
    if stem is None or cls_y is None:
        return None
    for spec in MODEL_SPECS.values():
        if (stem.shape[0] == int(64 * spec.widen_factor // 2) and cls_y.shape[0] == spec.simcc_bins[1]
                and blocks == max(round(3 * spec.deepen_factor), 1)):
            return spec.name
    return None


def load_model(model: str, weights: StateLike | None = None) -> DWPose:
    """A DWPose nn.Module (cpu) with `weights`: a checkpoint path, a registry name, a state dict,
    None (the embedded default of `model`) or 'random' (seeded default init: untrained, for plumbing tests)."""
    if isinstance(weights, str) and weights == "random":
        torch.manual_seed(0)
        return build_model(model)
    if weights is None:
        weights = default_weights(model)
    if isinstance(weights, (str, os.PathLike)):
        weights = resolve_weights(weights)
    return load_checkpoint(build_model(model), weights)
