"""DWPose model definitions (mmpose-compatible state dicts)."""
from .pose_model import DWPose, build_model, load_checkpoint, mmpose_to_model_keys
from .specs import FLIP_INDICES, MODEL_SPECS, ModelSpec, get_spec

__all__ = ["DWPose", "build_model", "load_checkpoint", "mmpose_to_model_keys",
           "FLIP_INDICES", "MODEL_SPECS", "ModelSpec", "get_spec"]
