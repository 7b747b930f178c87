"""RTMCCHead: 7x7 conv, ScaleNorm+Linear, one gated attention unit, SimCC classifiers (mmpose 1.x)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ScaleNorm(nn.Module):
    """x / max(||x|| / sqrt(dim), eps) * g, a single learned scalar g."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale = dim ** -0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class Scale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class GAU(nn.Module):
    """Gated attention unit over keypoint tokens (mmpose's RTMCCBlock, self-attention, no rel. bias)."""

    def __init__(self, dim: int, expansion_factor: int = 2, s: int = 128) -> None:
        super().__init__()
        self.e = int(dim * expansion_factor)
        self.s = s
        self.uv = nn.Linear(dim, 2 * self.e + s, bias=False)
        self.gamma = nn.Parameter(torch.rand(2, s))
        self.beta = nn.Parameter(torch.rand(2, s))
        self.o = nn.Linear(self.e, dim, bias=False)
        self.ln = ScaleNorm(dim)
        self.res_scale = Scale(dim)
        nn.init.xavier_uniform_(self.uv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        uv = F.silu(self.uv(self.ln(x)))
        u, v, base = torch.split(uv, [self.e, self.e, self.s], dim=-1)
        qk = base.unsqueeze(2) * self.gamma + self.beta  # (N, K, 2, s)
        q, k = qk.unbind(dim=2)
        kernel = torch.square(F.relu(torch.bmm(q, k.transpose(1, 2)) / math.sqrt(self.s)))
        return self.res_scale(x) + self.o(u * torch.bmm(kernel, v))


class RTMCCHead(nn.Module):
    """Maps the stride-32 feature map to SimCC logits `(simcc_x (N,K,2W), simcc_y (N,K,2H))`."""

    def __init__(self, in_channels: int, num_keypoints: int, input_size: tuple[int, int],
                 split_ratio: float = 2.0, hidden_dims: int = 256, kernel_size: int = 7) -> None:
        super().__init__()
        w, h = input_size
        flatten_dims = (w // 32) * (h // 32)
        self.final_layer = nn.Conv2d(in_channels, num_keypoints, kernel_size, padding=kernel_size // 2)
        self.mlp = nn.Sequential(ScaleNorm(flatten_dims), nn.Linear(flatten_dims, hidden_dims, bias=False))
        self.gau = GAU(hidden_dims)
        self.cls_x = nn.Linear(hidden_dims, int(w * split_ratio), bias=False)
        self.cls_y = nn.Linear(hidden_dims, int(h * split_ratio), bias=False)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.gau(self.mlp(self.final_layer(feats).flatten(2)))
        return self.cls_x(x), self.cls_y(x)
