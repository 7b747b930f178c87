"""BatchNorm synchronised across processes on any device (torch's SyncBatchNorm needs CUDA).

mmpose trains with SyncBN; without it, a 2-process run normalises each half-batch on its own
and no longer equals one process on the whole batch. This version all-reduces the per-channel
sums through the autograd-aware `torch.distributed.nn.all_reduce`, so gloo on CPU works.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class CpuSyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the global batch of all processes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn import all_reduce

        c = x.shape[1]
        count = torch.tensor([x.numel() / c], dtype=x.dtype, device=x.device)
        stats = all_reduce(torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), count]))
        total = stats[-1]
        mean = stats[:c] / total
        var = stats[c:2 * c] / total - mean * mean
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * total / (total - 1), alpha=m)
            self.num_batches_tracked.add_(1)
        inv = torch.rsqrt(var + self.eps)
        return (x - mean[None, :, None, None]) * (inv * self.weight)[None, :, None, None] + self.bias[None, :, None, None]


def convert_sync_bn(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d (in place where possible) by the synchronised version, keeping its state."""
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, CpuSyncBatchNorm2d):
        new = CpuSyncBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                 module.track_running_stats)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        new.requires_grad_(module.weight.requires_grad)
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_sync_bn(child))
    return module
