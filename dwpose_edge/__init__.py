"""dwpose_edge: DWPose whole-body pose estimation, mmpose-exact, on ONNX Runtime, OpenVINO, ncnn and PyTorch."""
from .errors import DwposeEdgeError
from .estimator import Estimator
from .result import PoseResult
from .smoothing import OneEuroConfig
from .tracking import PoseTracker
from .version import __version__

__all__ = ["Estimator", "PoseResult", "PoseTracker", "OneEuroConfig", "DwposeEdgeError", "__version__"]
