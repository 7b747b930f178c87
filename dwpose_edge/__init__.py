"""dwpose_edge: DWPose whole-body pose estimation, mmpose-exact, on torch, ONNX Runtime, OpenVINO and ncnn."""
from .errors import DwposeEdgeError
from .estimator import Estimator
from .result import PoseResult

__version__ = "0.1.0"
__all__ = ["Estimator", "PoseResult", "DwposeEdgeError", "__version__"]
