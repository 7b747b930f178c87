"""DWPose model definitions (mmpose-compatible state dicts).

`specs` (variants, constants) needs only numpy; the nn.Modules are imported on first use so that
`import dwpose_edge` and the non-torch runtimes do not load torch.
"""
from .specs import FLIP_INDICES, MODEL_SPECS, ModelSpec, get_spec

_LAZY = {"DWPose", "build_model", "load_checkpoint", "mmpose_to_model_keys"}

__all__ = sorted(_LAZY) + ["FLIP_INDICES", "MODEL_SPECS", "ModelSpec", "get_spec"]


def __getattr__(name: str):
    if name in _LAZY:
        from . import pose_model

        return getattr(pose_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
