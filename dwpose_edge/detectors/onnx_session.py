"""One ONNX detector file opened on onnxruntime or OpenVINO (CPU): a `run(x) -> outputs` callable."""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from ..errors import InputError, ModelFileError
from ..runtimes.base import require

DETECTOR_RUNTIMES = ("onnxruntime", "openvino")


def detector_runtime(runtime: str) -> str:
    """The runtime a detector uses next to a pose `runtime`: OpenVINO with OpenVINO, else onnxruntime."""
    return "openvino" if runtime == "openvino" else "onnxruntime"


def open_session(path: str | os.PathLike, runtime: str = "onnxruntime", threads: int | None = None
                 ) -> tuple[Callable[[np.ndarray], list[np.ndarray]], list[str]]:
    """(run, output names): `run(x)` returns every output of the model, in the file's order."""
    path = os.fspath(path)
    if runtime == "onnxruntime":
        ort = require("onnxruntime", "dwpose-edge")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelFileError(f"onnxruntime cannot load the detector {path}: {_first_line(exc)}") from exc
        name = session.get_inputs()[0].name
        return (lambda x: session.run(None, {name: x})), [o.name for o in session.get_outputs()]
    if runtime == "openvino":
        ov = require("openvino", "dwpose-edge[openvino]")
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            compiled = ov.Core().compile_model(path, "CPU", config)
        except Exception as exc:
            raise ModelFileError(f"OpenVINO cannot load the detector {path}: {_first_line(exc)}") from exc
        outputs = list(compiled.outputs)

        def run(x: np.ndarray) -> list[np.ndarray]:
            result = compiled(x)
            return [np.asarray(result[o]) for o in outputs]

        return run, [o.get_any_name() if o.get_names() else f"output{i}" for i, o in enumerate(outputs)]
    raise InputError(f"detectors run on {' or '.join(DETECTOR_RUNTIMES)}, not {runtime!r}")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
