"""DWPose model definitions as plain nn.Modules with mmpose-compatible state dicts (needs PyTorch: the
`dwpose-edge[torch]` extra). Variants and constants live in `dwpose_edge.specs`, which needs only numpy."""
from .pose_model import DWPose, build_model, load_checkpoint, load_model, mmpose_to_model_keys

__all__ = ["DWPose", "build_model", "load_checkpoint", "load_model", "mmpose_to_model_keys"]
