"""RTMPose's optimiser schedule and weight EMA, as pure functions and one small class."""
from __future__ import annotations

import math

import torch
from torch import nn


def learning_rate(step: int, epoch_float: float, *, base_lr: float, max_epochs: int, warmup_iters: int = 1000,
                  warmup_factor: float = 1e-5, cosine_begin: int | None = None, eta_min_ratio: float = 0.05) -> float:
    """LinearLR warm-up over the first `warmup_iters` iterations (factor 1e-5 -> 1), then constant until
    `cosine_begin` (default max_epochs // 2), then cosine to base_lr * eta_min_ratio at max_epochs
    (rtmpose configs: LinearLR + CosineAnnealingLR(begin=max_epochs//2, convert_to_iter_based))."""
    begin = max_epochs // 2 if cosine_begin is None else cosine_begin
    lr = base_lr
    if epoch_float >= begin and max_epochs > begin:
        t = min(1.0, (epoch_float - begin) / (max_epochs - begin))
        eta_min = base_lr * eta_min_ratio
        lr = eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * t)) / 2
    if step < warmup_iters:
        lr *= warmup_factor + (1 - warmup_factor) * step / warmup_iters
    return lr


def param_groups(modules: list[nn.Module], weight_decay: float) -> list[dict]:
    """AdamW groups: no decay on norm weights and biases (paramwise_cfg norm/bias_decay_mult=0)."""
    decay, no_decay, seen = [], [], set()
    for module in modules:
        for m in module.modules():
            for name, p in m.named_parameters(recurse=False):
                if not p.requires_grad or id(p) in seen:
                    continue
                seen.add(id(p))
                is_norm = isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm))
                (no_decay if is_norm or name == "bias" else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class ExpMomentumEMA:
    """mmdet's ExpMomentumEMA (momentum 2e-4, gamma 2000), parameters and buffers (update_buffers=True)."""

    def __init__(self, model: nn.Module, momentum: float = 0.0002, gamma: float = 2000.0) -> None:
        self.momentum, self.gamma, self.steps = momentum, gamma, 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        m = (1 - self.momentum) * math.exp(-float(1 + self.steps) / self.gamma) + self.momentum
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                self.state[k].mul_(1 - m).add_(v.detach(), alpha=m)
            else:
                self.state[k].copy_(v)
        self.steps += 1

    def state_dict(self) -> dict:
        return {"steps": self.steps, "state": self.state}

    def load_state_dict(self, d: dict) -> None:
        self.steps = int(d["steps"])
        self.state = {k: v.clone() for k, v in d["state"].items()}
