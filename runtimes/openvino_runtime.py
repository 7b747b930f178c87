"""OpenVINO: reads IR (.xml) or ONNX; CPU by default, GPU/NPU device names passed through. Precision set explicitly."""
from __future__ import annotations

import os
import threading

import numpy as np

from dwpose_edge.errors import InputError, ModelFileError, RuntimeUnavailableError
from dwpose_edge.onnx_file import check_onnx_file, ensure_checked
from dwpose_edge.runtimes.base import check_batch, require
from dwpose_edge.runtimes.cpu_features import has_bf16, require_bf16
from dwpose_edge.runtimes.io_names import input_size_from_shape, order_outputs

# Our precision -> OpenVINO INFERENCE_PRECISION_HINT. Never leave it unset: CPUs with bf16 would default to it.
# bf16 runs the fp32 IR with bf16 compute (runtimes/precisions.py), on CPUs that have it (cpu_features.py).
PRECISION_HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "int8": "f32"}


def inference_precision(core, device: str, precision: str) -> str:
    """The hint to use: f16 only on a non-CPU device that computes in f16 natively, else f32 (fp16 IR weights still
    load).

    int8 runs its float layers (those kept out of int8 for accuracy) in bf16 on CPUs with bf16, and the
    export's gate measures it so. Measured (docs/int8/PROFILE.md, 1 thread, batch 8, ms per crop): the
    embedded dwpose-t's int8 export (16 float layers) 5.10 with f32 float layers, 3.31 with bf16, against 3.52
    for the bf16 model; the trained test model's (3 float head blocks) 2.99 and 2.65, against 3.47.
    """
    hint = PRECISION_HINTS[precision]
    if hint == "f16":
        # on a CPU, fp16 means fp16 weights computed in f32: ARM's CPU plugin would otherwise compute in f16, the
        # arithmetic that moves this model's keypoints on ARMv8.2 cores (runtimes/ncnn_runtime.py FP16_ARITHMETIC)
        if device.startswith("CPU") or "FP16" not in core.get_property(device, "OPTIMIZATION_CAPABILITIES"):
            return "f32"
    if precision == "int8" and device.startswith("CPU") and has_bf16():
        return "bf16"
    return hint


class OpenVinoRuntime:
    """Compiled OpenVINO model; infer requests per thread, so one instance may serve several threads.

    On a CPU with two or more threads the model is compiled twice: for one crop with the LATENCY hint
    (every thread on the one crop), and with the THROUGHPUT hint for batches that split evenly over
    its streams (one request per stream, run at once). On 2 cores, 2 streams of 1 thread did a batch
    of 2, 8 or 16 crops 6-11% faster than 2 threads on the whole batch; uneven splits (3 or 5 crops
    on 2 streams) were slower, so those batches run on the LATENCY model. `streams`: None = OpenVINO's
    choice for the THROUGHPUT hint, 1 = no split.
    """

    name = "openvino"

    def __init__(self, path: str | os.PathLike, device: str = "CPU", threads: int | None = None,
                 input_size: tuple[int, int] | None = None, precision: str = "fp32",
                 streams: int | None = None) -> None:
        ov = require("openvino", "dwpose-edge[openvino]")
        if precision not in PRECISION_HINTS:
            raise InputError(f"openvino precision must be one of {sorted(PRECISION_HINTS)}, got {precision!r}")
        path = os.fspath(path)
        if path.endswith(".onnx"):
            ensure_checked(path)
        else:
            check_ir_files(path)
        core = ov.Core()
        device = device.upper()
        if precision == "bf16":
            if not device.startswith("CPU"):
                raise InputError(f"openvino bf16 runs on the CPU only here; got device={device!r}, use 'CPU'")

            require_bf16("openvino precision='bf16'")
        if device.split(".")[0].split(":")[0] not in {d.split(".")[0] for d in core.available_devices} | {"AUTO", "MULTI", "HETERO"}:
            raise InputError(f"OpenVINO device {device!r} not available here; available: {core.available_devices}")
        try:
            model = core.read_model(path)
        except Exception as exc:
            if path.endswith(".onnx"):
                check_onnx_file(path)  # a file vouched for by its hash may still be bad: name what is wrong with it
            raise ModelFileError(f"OpenVINO cannot read {path}: {ov_error_summary(exc)}; the file is corrupt, "
                                 "truncated or not a pose model: re-export it") from exc
        inp = model.inputs[0]
        pshape = inp.get_partial_shape()
        shape = [d.get_length() if d.is_static else None for d in pshape]
        self.input_size = input_size_from_shape(shape, path, input_size)
        config = {"INFERENCE_PRECISION_HINT": inference_precision(core, device, precision),
                  "PERFORMANCE_HINT": "LATENCY"}
        if threads and device.startswith("CPU"):
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            if shape[0] is not None:  # let any batch through: DWPose graphs are batch-independent
                model.reshape({inp.get_any_name(): ov.PartialShape([-1, 3, self.input_size[1], self.input_size[0]])})
            self.compiled = core.compile_model(model, device, config)
            self.batched, self.streams = self.compiled, 1
            if device.startswith("CPU") and streams != 1 and int(self.compiled.get_property("INFERENCE_NUM_THREADS")) > 1:
                tp = {**config, "PERFORMANCE_HINT": "THROUGHPUT"}
                if streams:
                    tp["NUM_STREAMS"] = int(streams)
                self.batched = core.compile_model(model, device, tp)
                self.streams = int(self.batched.get_property("NUM_STREAMS"))
        except Exception as exc:
            raise ModelFileError(f"OpenVINO cannot compile {path} for {device}: {ov_error_summary(exc)}; "
                                 "the file is not a DWPose model or is corrupt: re-export it") from exc
        self.inference_precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        if precision == "bf16" and self.compiled.get_property("INFERENCE_PRECISION_HINT") != ov.Type.bf16:
            raise RuntimeUnavailableError(
                f"OpenVINO compiled {path} in {self.inference_precision}, not bf16, although this CPU reports bf16 "
                f"(its capabilities: {core.get_property(device, 'OPTIMIZATION_CAPABILITIES')}); use precision='fp32'")
        names = [o.get_any_name() for o in self.compiled.outputs]
        dims = [o.get_partial_shape()[-1].get_length() if o.get_partial_shape()[-1].is_static else None
                for o in self.compiled.outputs]
        self._ix, self._iy = order_outputs(names, dims, self.input_size)
        self.device, self.precision, self.path = device, precision, path
        self._local = threading.local()

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = check_batch(batch, self.input_size)
        requests = self._requests()
        n = len(batch)
        try:
            if self.streams > 1 and n % self.streams == 0:
                per_stream = n // self.streams
                for k, request in enumerate(requests[1:]):
                    request.start_async({0: batch[k * per_stream:(k + 1) * per_stream]})
                for request in requests[1:]:
                    request.wait()
                # concatenate reads the requests' output tensors directly: one copy, not a copy per chunk first
                out = tuple(np.concatenate([r.get_output_tensor(i).data for r in requests[1:]])
                            for i in (self._ix, self._iy))
            else:
                requests[0].infer({0: batch})
                out = self._outputs(requests[0])
        except Exception as exc:
            raise ModelFileError(f"OpenVINO inference of {self.path} failed: {ov_error_summary(exc)}") from exc
        if out[0].shape[0] != n or out[1].shape[0] != n:
            # seen: the int8 IR on an ARMv8.0 core (qemu cortex-a72, no dot product) returns 0 rows, no error
            raise ModelFileError(f"OpenVINO returned outputs of shapes {out[0].shape} / {out[1].shape} for {n} crops "
                                 f"from {self.path} ({self.precision}) on this CPU: its plugin does not run this model "
                                 "correctly here; use another runtime or precision on this device")
        return out  # type: ignore[return-value]

    def _requests(self) -> list:
        """This thread's requests: [one-crop request, one per stream of the batched model...]."""
        requests = getattr(self._local, "requests", None)
        if requests is None:
            requests = [self.compiled.create_infer_request()]
            if self.batched is not self.compiled:
                requests += [self.batched.create_infer_request() for _ in range(self.streams)]
            self._local.requests = requests
        return requests

    def _outputs(self, request) -> tuple[np.ndarray, np.ndarray]:
        return request.get_output_tensor(self._ix).data.copy(), request.get_output_tensor(self._iy).data.copy()


def check_ir_files(xml_path: str) -> None:
    """An IR is an .xml plus a .bin beside it; both must exist and be non-empty."""
    bin_path = os.path.splitext(xml_path)[0] + ".bin"
    for p in (xml_path, bin_path):
        if not os.path.isfile(p):
            raise ModelFileError(f"OpenVINO IR file missing: {p}")
        if os.path.getsize(p) == 0:
            raise ModelFileError(f"OpenVINO IR file is empty: {p}")


def ov_error_summary(exc: Exception) -> str:
    """The informative lines of an OpenVINO exception, without its 'Exception from file.cpp:N' frames."""
    lines = [ln.strip() for ln in str(exc).splitlines()]
    useful = [ln for ln in lines if ln and not ln.startswith(("Exception from", "Check '"))]
    return " ".join(useful)[:300] or (lines[0] if lines else type(exc).__name__)
