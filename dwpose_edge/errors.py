"""Exception hierarchy: every error the package raises on purpose derives from DwposeEdgeError.

Catch `DwposeEdgeError` to handle all of them; the subclasses say which stage
failed, and every message says what to do about it.
"""
from __future__ import annotations


class DwposeEdgeError(Exception):
    """Base class of all dwpose_edge errors."""


class InputError(DwposeEdgeError, ValueError):
    """An image, box or array given to the package is unusable (shape, dtype, NaN, empty...)."""


class DataError(DwposeEdgeError, OSError):
    """A data file (annotations, an image of a data set) is missing, unreadable or unusable."""


class WeightsError(DwposeEdgeError):
    """A checkpoint cannot be found, downloaded, verified or loaded into the model."""


class ChecksumError(WeightsError):
    """A file's sha256 does not match the expected value."""


class ModelFileError(DwposeEdgeError):
    """A model file (ONNX, OpenVINO IR, ncnn, manifest) is missing, corrupt or for another model."""


class RuntimeUnavailableError(DwposeEdgeError, ImportError):
    """An optional runtime package is not installed; the message names the pip extra."""


class ExportError(DwposeEdgeError):
    """A conversion step failed."""


class ParityError(ExportError):
    """An exported model disagrees with the PyTorch reference beyond the allowed threshold."""


class CalibrationError(ExportError):
    """INT8 calibration data is missing, too small or unusable."""
