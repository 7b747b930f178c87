"""LiteRT (TensorFlow Lite, the runtime Android ships) on the `ai-edge-litert` package, XNNPACK on the CPU.

The file's input is (1,3,H,W) float32 NCHW (what `export.to_litert` writes), its outputs (1,K,2W) and
(1,K,2H) float32, told apart by their bin counts, never by their order. The input size comes from the file.
An INT8 file keeps float32 input and outputs; fp16 files hold fp16 weights that XNNPACK dequantises at load
and computes in fp32.

Batches run one crop at a time through the batch-1 interpreter: litert-torch bakes the batch of 1 into the
graph's reshapes, so `resize_tensor_input(N)` fails in XNNPACK ("failed to reshape"); per crop, a batch of 8
costs what 8 single crops cost (measured: 16.0 vs 15.9 ms per crop, embedded dwpose-t, 1 thread, x86).

Thread safety: a LiteRT Interpreter is not thread-safe. Each `infer` call borrows an interpreter from a pool
(one per concurrent caller, created on first need and kept), so concurrent calls from several Python threads
are safe and run in parallel, each interpreter with `threads` XNNPACK threads.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from dwpose_edge.errors import InputError, ModelFileError
from dwpose_edge.runtimes.base import check_batch, require

EXTRA = "dwpose-edge[litert]"
PRECISIONS = ("fp32", "fp16", "int8")
TFLITE_MAGIC = b"TFL3"  # flatbuffer file identifier, bytes 4..8


class LiteRtRuntime:
    """Runs a pose .tflite file on LiteRT/XNNPACK. See the module doc for layout, batching and threads."""

    name = "litert"

    def __init__(self, path: str | os.PathLike, input_size: tuple[int, int] | None = None,
                 threads: int | None = None, precision: str = "fp32") -> None:
        self._interp = require("ai_edge_litert.interpreter", EXTRA)
        if precision not in PRECISIONS:
            raise InputError(f"litert precision must be one of {PRECISIONS}, got {precision!r}")
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelFileError(f"LiteRT model file not found: {self.path}")
        with open(self.path, "rb") as f:
            head = f.read(8)
        if len(head) < 8:
            raise ModelFileError(f"{self.path} is empty or truncated ({len(head)} bytes); re-export it with "
                                 "dwpose-edge export --to litert")
        if head[4:8] != TFLITE_MAGIC:
            raise ModelFileError(f"{self.path} is not a .tflite file (no {TFLITE_MAGIC.decode()} identifier); "
                                 "re-export it with dwpose-edge export --to litert")
        self.threads = int(threads) if threads else max(1, os.cpu_count() or 1)
        self.precision = precision
        first = self._new_interpreter()
        self._check_io(first, input_size)
        self._check_precision(first)
        self._idle: list = [first]
        self._lock = threading.Lock()

    def _new_interpreter(self):
        try:
            it = self._interp.Interpreter(model_path=os.fspath(self.path), num_threads=self.threads)
            it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"LiteRT cannot load {self.path}: {str(exc).strip()[:300]}; the file is corrupt, "
                                 "truncated or uses ops this ai-edge-litert lacks: re-export it") from exc
        return it

    def _check_io(self, it, input_size: tuple[int, int] | None) -> None:
        inputs, outputs = it.get_input_details(), it.get_output_details()
        if len(inputs) != 1:
            raise ModelFileError(f"{self.path} has {len(inputs)} inputs; a pose model has one (N,3,H,W)")
        inp = inputs[0]
        shape = [int(d) for d in inp["shape"]]
        if inp["dtype"] != np.float32 or len(shape) != 4 or shape[1] != 3 or shape[0] != 1:
            raise ModelFileError(f"{self.path}: input is {inp['dtype'].__name__} {shape}, expected float32 "
                                 "(1,3,H,W) NCHW as `dwpose-edge export --to litert` writes it")
        w, h = shape[3], shape[2]
        if input_size is not None and tuple(input_size) != (w, h):
            raise ModelFileError(f"{self.path} takes {w}x{h} (WxH) crops but input_size={tuple(input_size)} was "
                                 "given (a file for another model size?)")
        self.input_size: tuple[int, int] = (w, h)
        self._input_index = int(inp["index"])
        if len(outputs) != 2:
            raise ModelFileError(f"{self.path} has {len(outputs)} outputs; a SimCC pose model has 2 "
                                 "(simcc_x, simcc_y)")
        shapes = [tuple(int(d) for d in o["shape"]) for o in outputs]
        if any(len(s) != 3 or s[0] != 1 for s in shapes) or shapes[0][1] != shapes[1][1] \
                or any(o["dtype"] != np.float32 for o in outputs):
            raise ModelFileError(f"{self.path}: outputs are {shapes}, expected float32 (1,K,2W) and (1,K,2H)")
        bins = [s[2] for s in shapes]
        if bins == [2 * w, 2 * h]:
            order = (0, 1)
        elif bins == [2 * h, 2 * w]:
            order = (1, 0)
        else:
            raise ModelFileError(f"{self.path}: output bins {bins} do not match a {w}x{h} input "
                                 f"(expected {2 * w} and {2 * h}); not a SimCC model of this size")
        self._output_index = (int(outputs[order[0]]["index"]), int(outputs[order[1]]["index"]))

    def _check_precision(self, it) -> None:
        int8 = any(t["dtype"] in (np.int8, np.uint8) for t in it.get_tensor_details())
        if int8 != (self.precision == "int8"):
            raise ModelFileError(f"{self.path} is {'an int8' if int8 else 'a float'} LiteRT model but precision="
                                 f"{self.precision!r} was asked for; open it with "
                                 f"precision={'int8' if int8 else 'fp32 or fp16'!r}")

    def _borrow(self):
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._new_interpreter()

    def _give_back(self, it) -> None:
        with self._lock:
            self._idle.append(it)

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = check_batch(batch, self.input_size)
        it = self._borrow()
        try:
            xs, ys = [], []
            for crop in batch:
                it.set_tensor(self._input_index, crop[None])
                it.invoke()
                xs.append(it.get_tensor(self._output_index[0])[0])  # get_tensor copies: the caller owns it
                ys.append(it.get_tensor(self._output_index[1])[0])
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"LiteRT inference of {self.path} failed: {str(exc).strip()[:300]}") from exc
        finally:
            self._give_back(it)
        return np.stack(xs), np.stack(ys)
