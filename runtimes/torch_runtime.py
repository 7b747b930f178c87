"""PyTorch runtime: the reference. CPU fp32, CUDA fp32/fp16."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dwpose_edge.errors import InputError, RuntimeUnavailableError
from dwpose_edge.runtimes.base import check_batch


class TorchRuntime:
    """Runs a `DWPose` nn.Module; `threads` sets torch's intra-op threads (process-wide, so it is set again
    on every call where another instance changed it). Thread-safe: forward in inference mode mutates nothing."""

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
        if precision not in ("fp32", "fp16"):
            raise InputError(f"torch runtime precision must be fp32 or fp16, got {precision!r}")
        if precision == "fp16" and not device.startswith("cuda"):
            raise InputError("torch fp16 runs on CUDA only; on CPU use fp32, or onnxruntime/openvino for fp16/int8")
        # None: torch's count now. Kept per instance and applied on every call, so a call's numerics do not
        # depend on which thread makes it (a new thread starts at the process-wide count, which another
        # instance or library may have changed; torch CPU logits move by ~5e-6 of their magnitude between
        # 1 and 2 threads).
        self.threads = int(threads) if threads else torch.get_num_threads()
        torch.set_num_threads(self.threads)
        self.device = torch_device
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.precision = precision
        self.model = model.to(self.device, self.dtype).eval()
        self.input_size: tuple[int, int] = tuple(model.spec.input_size)  # type: ignore[assignment]

    @torch.inference_mode()
    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # torch's intra-op thread count is process-wide: re-assert ours, another instance may have changed it
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        x = torch.from_numpy(check_batch(batch, self.input_size)).to(self.device, self.dtype)
        simcc_x, simcc_y = self.model(x)
        return simcc_x.float().cpu().numpy(), simcc_y.float().cpu().numpy()
