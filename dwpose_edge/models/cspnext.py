"""CSPNeXt backbone (arch P5), state-dict compatible with mmpose 1.x `backbone.*` keys."""
from __future__ import annotations

import torch
from torch import nn

# (in_channels, out_channels, num_blocks, add_identity, use_spp) at widen/deepen 1.0
ARCH_P5 = ((64, 128, 3, True, False), (128, 256, 6, True, False),
           (256, 512, 6, True, False), (512, 1024, 3, False, True))


class ConvModule(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> SiLU, named `conv`/`bn` like mmcv's ConvModule."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.activate = nn.SiLU(inplace=True)


class DepthwiseSeparableConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__()
        self.depthwise_conv = ConvModule(cin, cin, k, groups=cin)
        self.pointwise_conv = ConvModule(cin, cout, 1)


class CSPNeXtBlock(nn.Module):
    """3x3 conv then 5x5 depthwise-separable conv, with an identity shortcut."""

    def __init__(self, channels: int, add_identity: bool) -> None:
        super().__init__()
        self.conv1 = ConvModule(channels, channels, 3)
        self.conv2 = DepthwiseSeparableConv(channels, channels, 5)
        self.add_identity = add_identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class ChannelAttention(nn.Module):
    """Squeeze-and-excite style gate: global average pool, 1x1 conv, hard sigmoid."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(channels, channels, 1, bias=True)
        self.act = nn.Hardsigmoid(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.act(self.fc(self.global_avgpool(x)))


class CSPLayer(nn.Module):
    def __init__(self, cin: int, cout: int, num_blocks: int, add_identity: bool) -> None:
        super().__init__()
        mid = int(cout * 0.5)
        self.main_conv = ConvModule(cin, mid, 1)
        self.short_conv = ConvModule(cin, mid, 1)
        self.final_conv = ConvModule(2 * mid, cout, 1)
        self.blocks = nn.Sequential(*[CSPNeXtBlock(mid, add_identity) for _ in range(num_blocks)])
        self.attention = ChannelAttention(2 * mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.blocks(self.main_conv(x))
        return self.final_conv(self.attention(torch.cat((main, self.short_conv(x)), dim=1)))


class SPPBottleneck(nn.Module):
    """Three parallel max-pools (5, 9, 13) concatenated with their input."""

    def __init__(self, channels: int, kernel_sizes: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__()
        mid = channels // 2
        self.conv1 = ConvModule(channels, mid, 1)
        self.poolings = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in kernel_sizes)
        self.conv2 = ConvModule(mid * (len(kernel_sizes) + 1), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.poolings], dim=1))


class CSPNeXt(nn.Module):
    """CSPNeXt P5; `forward` returns the stride-32 feature map of the last stage."""

    def __init__(self, deepen_factor: float, widen_factor: float) -> None:
        super().__init__()
        stem_out = int(ARCH_P5[0][0] * widen_factor)
        stem_mid = int(ARCH_P5[0][0] * widen_factor // 2)
        self.stem = nn.Sequential(ConvModule(3, stem_mid, 3, stride=2), ConvModule(stem_mid, stem_mid, 3),
                                  ConvModule(stem_mid, stem_out, 3))
        for i, (cin, cout, n, add_identity, use_spp) in enumerate(ARCH_P5):
            cin, cout = int(cin * widen_factor), int(cout * widen_factor)
            n = max(round(n * deepen_factor), 1)
            layers: list[nn.Module] = [ConvModule(cin, cout, 3, stride=2)]
            if use_spp:
                layers.append(SPPBottleneck(cout))
            layers.append(CSPLayer(cout, cout, n, add_identity))
            self.add_module(f"stage{i + 1}", nn.Sequential(*layers))
        self.out_channels = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.stage4(self.stage3(self.stage2(self.stage1(x))))
