"""PyTorch runtime: the reference. CPU fp32 and bf16 (autocast, on CPUs with bf16 instructions), CUDA fp32/fp16."""
from __future__ import annotations

import types

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dwpose_edge.errors import InputError, RuntimeUnavailableError
from dwpose_edge.runtimes.base import check_batch
from dwpose_edge.runtimes.cpu_features import require_bf16

PRECISIONS = ("fp32", "fp16", "bf16")


def _linear_fp32(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    with torch.autocast("cpu", enabled=False):
        return F.linear(x.float(), self.weight.float(), None if self.bias is None else self.bias.float())


def keep_outputs_fp32(model: nn.Module) -> None:
    """Make the SimCC classifiers (`head.cls_x`/`head.cls_y`) compute in fp32 even under bf16 autocast.

    Autocast would return the logits themselves in bf16 (8-bit mantissa): near-tied SimCC peaks then
    become exact ties and the argmax jumps. Measured on the embedded dwpose-t, 44 photo crops, 1 thread:
    whole model in bf16 92.1% of keypoints within 2 px of fp32; classifiers in fp32 96.8%, at the same
    speed (they are ~2% of the FLOPs). A no-op outside autocast.
    """
    for name in ("cls_x", "cls_y"):
        layer = getattr(model.head, name)
        layer.forward = types.MethodType(_linear_fp32, layer)


class TorchRuntime:
    """Runs a `DWPose` nn.Module; `threads` sets torch's intra-op threads (process-wide, so it is set again
    on every call where another instance changed it). Thread-safe: forward in inference mode mutates nothing.

    bf16 (CPU): autocast to bf16 with the model and input in channels_last, the SimCC classifiers in fp32
    (`keep_outputs_fp32`). Measured on the embedded dwpose-t, one thread, batch 8, ms per crop: fp32 20.2,
    fp32 channels_last 16.9, bf16 10.6, bf16 channels_last 6.0 (3.4x fp32). Only on CPUs with bf16
    instructions (AVX512-BF16 / AMX): elsewhere oneDNN emulates bf16, slower than fp32. Its keypoints must be
    validated against fp32 before use (`reference` runs the same weights in fp32; the Estimator does it).
    """

    name = "torch"

    def __init__(self, model: nn.Module, device: str = "cpu", precision: str = "fp32",
                 threads: int | None = None) -> None:
        try:
            torch_device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise InputError(f"unknown torch device {device!r} ({str(exc).splitlines()[0][:120]}); "
                             "use 'cpu', 'cuda' or 'cuda:N'") from None
        device = str(device)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeUnavailableError(
                f"device {device!r} requested but torch.cuda.is_available() is False "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}); use device='cpu'")
        if precision not in PRECISIONS:
            raise InputError(f"torch runtime precision must be one of {list(PRECISIONS)}, got {precision!r}")
        if precision == "fp16" and not device.startswith("cuda"):
            raise InputError("torch fp16 runs on CUDA only; on CPU use fp32 or bf16, or onnxruntime/openvino "
                             "for fp16/int8")
        if precision == "bf16":
            if torch_device.type != "cpu":
                raise InputError(f"torch bf16 runs on the CPU only here; got device={device!r}, use 'cpu'")

            require_bf16("torch precision='bf16'")
        # None: torch's count now. Kept per instance and applied on every call, so a call's numerics do not
        # depend on which thread makes it (a new thread starts at the process-wide count, which another
        # instance or library may have changed; torch CPU logits move by ~5e-6 of their magnitude between
        # 1 and 2 threads).
        self.threads = int(threads) if threads else torch.get_num_threads()
        torch.set_num_threads(self.threads)
        self.device = torch_device
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.precision = precision
        self.autocast = precision == "bf16"
        self.memory_format = torch.channels_last if self.autocast else torch.contiguous_format
        self.model = model.to(self.device, self.dtype).eval()
        if self.autocast:
            self.model = self.model.to(memory_format=torch.channels_last)
            keep_outputs_fp32(self.model)
        self.input_size: tuple[int, int] = tuple(model.spec.input_size)  # type: ignore[assignment]

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._forward(batch, self.autocast)

    def reference(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The same weights in fp32 (no autocast): what bf16 is validated against."""
        if self.dtype != torch.float32:
            raise InputError("the fp32 reference of a torch fp16 (CUDA) runtime is a separate fp32 runtime")
        return self._forward(batch, False)

    @torch.inference_mode()
    def _forward(self, batch: np.ndarray, bf16: bool) -> tuple[np.ndarray, np.ndarray]:
        # torch's intra-op thread count is process-wide: re-assert ours, another instance may have changed it
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        x = torch.from_numpy(check_batch(batch, self.input_size)).to(self.device, self.dtype)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            simcc_x, simcc_y = self.model(x.contiguous(memory_format=self.memory_format))
        return simcc_x.float().cpu().numpy(), simcc_y.float().cpu().numpy()
