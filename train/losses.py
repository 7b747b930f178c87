"""SimCC and two-stage pose distillation (TPD) losses, written to match mmpose 1.3.2 numerically.

Sources (mmpose 1.3.2 wheel):
- `mmpose/models/losses/classification_loss.py::KLDiscretLoss` (GT loss of RTMCCHead),
- `mmpose/models/losses/fea_dis_loss.py::FeaLoss` (feature distillation),
- `mmpose/models/losses/logit_dis_loss.py::KDLoss` (logit distillation),
- `mmpose/models/distillers/dwpose_distiller.py::DWPoseDistiller.loss` (how they are combined),
- configs `wholebody_2d_keypoint/dwpose/ubody/s1_dis/*.py` (alpha_fea 7e-5, logit weight 0.1) and
  `.../s2_dis/*.py` (two_dis=True, logit weight 1, 60 epochs).

Stage 1 per batch:  loss_kpt + r(epoch) * loss_fea + r(epoch) * loss_logit, r = 1 - epoch / max_epochs.
Stage 2 per batch:  loss_logit only (weight gamma = 1, no decay); the student head is fed the teacher's
(= stage-1 student's) backbone features, see `Stage2Loss`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dwpose_edge.errors import InputError
from dwpose_edge.specs import NUM_KEYPOINTS

SIMCC_BETA = 10.0            # KLDiscretLoss(beta=10.) in every rtmpose/dwpose config; KDLoss receives it too
LABEL_BETA = 10.0            # KLDiscretLoss default label_beta (label_softmax=True in the configs)
FEATURE_ALPHA_CODE = 7e-5    # FeaLoss alpha_fea in mmpose's s1_dis configs (what the released weights used)
FEATURE_ALPHA_PAPER = 5e-5   # DWPose paper, Sec. 4.1 "alpha = 0.00005" (paper's Eq. 1 also normalises by 1/CHW)
STAGE1_LOGIT_WEIGHT = 0.1    # KDLoss weight in s1_dis configs (paper's beta = 0.1 in Eq. 4)
STAGE2_LOGIT_WEIGHT = 1.0    # KDLoss weight in s2_dis configs (paper's gamma = 1 in Eq. 7)

SimCC = tuple[Tensor, Tensor]


def distill_weight(epoch: int, max_epochs: int) -> float:
    """Weight-decay factor of the stage-1 distillation losses, as DWPoseDistiller computes it.

    `1 - epoch / max_epochs` with `epoch` counted from 0 (mmengine's message hub 'epoch' at
    `before_train_epoch`): 1.0 during the first epoch, 1/max_epochs during the last, never 0.
    The paper's Eq. 5, r(t) = 1 - (t - 1) / t_max with t = 1..t_max, is the same function of t = epoch + 1
    (see `distill_weight_paper`).
    """
    if max_epochs <= 0:
        raise InputError(f"max_epochs must be positive, got {max_epochs}")
    if not 0 <= epoch < max_epochs:
        raise InputError(f"epoch must be in [0, {max_epochs}) (counted from 0), got {epoch}")
    return 1.0 - epoch / max_epochs


def distill_weight_paper(t: int, t_max: int) -> float:
    """The paper's r(t) = 1 - (t - 1) / t_max, epochs t counted from 1 (Eq. 5). Equals distill_weight(t - 1)."""
    if not 1 <= t <= t_max:
        raise InputError(f"t must be in [1, {t_max}] (counted from 1), got {t}")
    return 1.0 - (t - 1) / t_max


def _check_simcc(pred: SimCC, other: SimCC, what: str) -> None:
    for axis, (a, b) in zip("xy", zip(pred, other)):
        if a.shape != b.shape or a.ndim != 3:
            raise InputError(f"{what}: simcc_{axis} shapes must match as (N,K,L), got {tuple(a.shape)} "
                             f"and {tuple(b.shape)}")


class KLDiscretLoss(nn.Module):
    """SimCC ground-truth loss of RTMCCHead, as mmpose's `KLDiscretLoss` (beta=10, label_softmax=True).

    Per axis and per (sample, keypoint) row:  mean over bins of
    KL(softmax(label * label_beta) || softmax(pred * beta)) = sum_i t_i (log t_i - log s_i) / L,
    times the keypoint's target weight; the rows are SUMMED over the batch and keypoints and divided by K;
    the x and y terms are added. Note the batch is summed, not averaged (mmpose:
    `loss = loss + t_loss.sum()`, `return loss / K`), and the bins are averaged (`torch.mean(..., dim=1)`).
    """

    def __init__(self, beta: float = SIMCC_BETA, label_softmax: bool = True, label_beta: float = LABEL_BETA,
                 use_target_weight: bool = True) -> None:
        super().__init__()
        self.beta = float(beta)
        self.label_softmax = label_softmax
        self.label_beta = float(label_beta)
        self.use_target_weight = use_target_weight

    def forward(self, pred: SimCC, target: SimCC, target_weight: Tensor | None = None) -> Tensor:
        """pred, target: (simcc_x (N,K,Wx), simcc_y (N,K,Wy)); target_weight (N,K)."""
        _check_simcc(pred, target, "KLDiscretLoss")
        n, k, _ = pred[0].shape
        if self.use_target_weight:
            if target_weight is None:
                raise InputError("KLDiscretLoss(use_target_weight=True) needs target_weight (N,K)")
            weight = target_weight.reshape(-1).to(pred[0].dtype)
        else:
            weight = 1.0
        loss = pred[0].new_zeros(())
        for p, t in zip(pred, target):
            p = p.reshape(-1, p.shape[-1])
            t = t.reshape(-1, t.shape[-1])
            log_s = F.log_softmax(p * self.beta, dim=1)
            if self.label_softmax:
                t = F.softmax(t * self.label_beta, dim=1)
            row = F.kl_div(log_s, t, reduction="none").mean(dim=1)
            loss = loss + (row * weight).sum()
        return loss / k


class FeatureLoss(nn.Module):
    """TPD stage-1 feature distillation, as mmpose's `FeaLoss`.

    A 1x1 conv (with bias, PyTorch default init) maps the student's last backbone feature to the
    teacher's channels, then  loss = alpha * sum((align(F_s) - F_t)^2) / N  (sum over C, H, W and the
    batch, divided by the batch size only). mmpose creates the conv only when the channel counts differ
    and uses the student feature as is otherwise; so does this class. `alpha` defaults to the code's
    7e-5 (`FEATURE_ALPHA_CODE`); the paper's 5e-5 is `FEATURE_ALPHA_PAPER` (the paper's Eq. 1 divides
    by C*H*W instead of N, so its alpha is not interchangeable with the code's).

    The conv is trainable: give `loss.parameters()` to the optimizer along with the student's. Its
    state-dict keys are `align.weight` / `align.bias` (mmpose: `distill_losses.loss_fea.align.*`).
    """

    def __init__(self, student_channels: int, teacher_channels: int, alpha: float = FEATURE_ALPHA_CODE) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.align: nn.Module | None = (
            nn.Conv2d(student_channels, teacher_channels, kernel_size=1, stride=1, padding=0)
            if student_channels != teacher_channels else None)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """feat_student (N,Cs,H,W), feat_teacher (N,Ct,H,W) -> scalar."""
        out = self.align(feat_student) if self.align is not None else feat_student
        feat_teacher = feat_teacher.detach()
        if out.shape != feat_teacher.shape:
            raise InputError(f"FeatureLoss: aligned student feature {tuple(out.shape)} does not match the "
                             f"teacher's {tuple(feat_teacher.shape)}; check student/teacher channels and input size")
        return F.mse_loss(out, feat_teacher, reduction="sum") / feat_teacher.shape[0] * self.alpha


class LogitLoss(nn.Module):
    """TPD logit distillation, as mmpose's `KDLoss` called by DWPoseDistiller.

    Per axis: KL(softmax(T * beta) || softmax(S * beta)) summed over the bins, summed over keypoints,
    averaged over the batch; x + y; times `weight`; divided by the number of keypoints (133).
    There is NO target-weight mask: invisible/unlabelled keypoints are distilled too (paper Sec. 3.1.2
    and 5.6; mmpose's KDLoss receives target_weight and ignores it). Teacher logits are detached.
    beta is the student's KLDiscretLoss beta (10). weight: 0.1 in stage 1 (`STAGE1_LOGIT_WEIGHT`),
    1 in stage 2 (`STAGE2_LOGIT_WEIGHT`, the paper's gamma).
    """

    def __init__(self, beta: float = SIMCC_BETA, num_keypoints: int = NUM_KEYPOINTS, weight: float = 1.0) -> None:
        super().__init__()
        self.beta = float(beta)
        self.num_keypoints = int(num_keypoints)
        self.weight = float(weight)

    def forward(self, student: SimCC, teacher: SimCC) -> Tensor:
        """student, teacher: (simcc_x (N,K,Wx), simcc_y (N,K,Wy)) logits -> scalar."""
        _check_simcc(student, teacher, "LogitLoss")
        n, k, _ = student[0].shape
        if k != self.num_keypoints:
            raise InputError(f"LogitLoss(num_keypoints={self.num_keypoints}) got logits with {k} keypoints")
        loss = student[0].new_zeros(())
        for s, t in zip(student, teacher):
            log_s = F.log_softmax(s.reshape(n * k, -1) * self.beta, dim=1)
            p_t = F.softmax(t.detach().reshape(n * k, -1) * self.beta, dim=1)
            per_row = F.kl_div(log_s, p_t, reduction="none").sum(dim=1)
            loss = loss + self.weight * per_row.reshape(n, k).sum(dim=1).mean()
        return loss / self.num_keypoints


class Stage1Loss(nn.Module):
    """TPD stage 1: GT SimCC loss + r(epoch) * (feature loss + logit loss), as DWPoseDistiller (two_dis=False).

    Holds the trainable feature-alignment conv: optimise `student.parameters()` and `self.parameters()`.
    The teacher is frozen (no grads) but note mmengine calls `model.train()` on the whole distiller every
    epoch, so in mmpose the teacher's BatchNorm runs in train mode (batch statistics) during distillation.
    """

    def __init__(self, student_channels: int, teacher_channels: int, *, alpha: float = FEATURE_ALPHA_CODE,
                 logit_weight: float = STAGE1_LOGIT_WEIGHT, beta: float = SIMCC_BETA,
                 num_keypoints: int = NUM_KEYPOINTS, use_feature: bool = True, use_logit: bool = True) -> None:
        super().__init__()
        self.gt = KLDiscretLoss(beta=beta)
        self.feature = FeatureLoss(student_channels, teacher_channels, alpha) if use_feature else None
        self.logit = LogitLoss(beta, num_keypoints, logit_weight) if use_logit else None

    def forward(self, *, student_logits: SimCC, teacher_logits: SimCC, target: SimCC, target_weight: Tensor,
                epoch: int, max_epochs: int, student_feat: Tensor | None = None,
                teacher_feat: Tensor | None = None) -> dict[str, Tensor]:
        """Returns {'loss_kpt', 'loss_fea', 'loss_logit'} (decay already applied); total = sum of values."""
        r = distill_weight(epoch, max_epochs)
        losses = {"loss_kpt": self.gt(student_logits, target, target_weight)}
        if self.feature is not None:
            if student_feat is None or teacher_feat is None:
                raise InputError("Stage1Loss with the feature loss needs student_feat and teacher_feat")
            losses["loss_fea"] = r * self.feature(student_feat, teacher_feat)
        if self.logit is not None:
            losses["loss_logit"] = r * self.logit(student_logits, teacher_logits)
        return losses


class Stage2Loss(nn.Module):
    """TPD stage 2 (head-aware self-KD), as DWPoseDistiller with two_dis=True.

    loss = gamma * LogitLoss(student_head(F), teacher_head(F)), no GT term, no decay, where F is the
    backbone feature of the stage-1 model computed once under no_grad and fed to both heads (mmpose
    feeds the teacher's backbone output to the new student head; export then keeps teacher.backbone +
    student.head). The new head starts from default init. Code quirk to reproduce: mmengine puts the
    whole distiller in train mode each epoch, so the frozen backbone's BatchNorm uses batch statistics
    and keeps updating its running stats, and those updated stats are what gets exported.
    """

    def __init__(self, gamma: float = STAGE2_LOGIT_WEIGHT, beta: float = SIMCC_BETA,
                 num_keypoints: int = NUM_KEYPOINTS) -> None:
        super().__init__()
        self.logit = LogitLoss(beta, num_keypoints, gamma)

    def forward(self, *, student_logits: SimCC, teacher_logits: SimCC) -> dict[str, Tensor]:
        return {"loss_logit": self.logit(student_logits, teacher_logits)}


__all__ = [
    "KLDiscretLoss", "FeatureLoss", "LogitLoss", "Stage1Loss", "Stage2Loss",
    "distill_weight", "distill_weight_paper",
    "SIMCC_BETA", "LABEL_BETA", "FEATURE_ALPHA_CODE", "FEATURE_ALPHA_PAPER",
    "STAGE1_LOGIT_WEIGHT", "STAGE2_LOGIT_WEIGHT",
]


def heatmap_warmup_loss(keypoint_maps: torch.Tensor, keypoints: torch.Tensor, target_weight: torch.Tensor,
                        input_size: tuple[int, int], sigma_cells: float = 1.0) -> torch.Tensor:
    """MSE between the head's per-keypoint map (`final_layer` output, (B,K,h,w) at stride 32) and a Gaussian
    heatmap of each keypoint (peak 1, `sigma_cells` cells wide), weighted like the SimCC loss.

    Not part of DWPose: an optional warm-up for training from scratch. SimCC's 1-D KL gives the
    backbone no spatially local signal until the head already localises, and a randomly initialised
    CSPNeXt sits on a flat-logit plateau for thousands of iterations (the released models start from
    a CSPNeXt pretrained on AIC+COCO body keypoints with UDP heatmaps). A dense heatmap target on the map
    the head reads is local.
    """
    b, k, h, w = keypoint_maps.shape
    sx, sy = input_size[0] / w, input_size[1] / h
    gx = (torch.arange(w, dtype=keypoint_maps.dtype, device=keypoint_maps.device) + 0.5) * sx
    gy = (torch.arange(h, dtype=keypoint_maps.dtype, device=keypoint_maps.device) + 0.5) * sy
    kx, ky = keypoints[..., 0:1], keypoints[..., 1:2]  # (B,K,1)
    dx = ((gx[None, None] - kx) / (sigma_cells * sx)) ** 2  # (B,K,w)
    dy = ((gy[None, None] - ky) / (sigma_cells * sy)) ** 2  # (B,K,h)
    target = torch.exp(-0.5 * (dy[..., :, None] + dx[..., None, :]))
    err = ((keypoint_maps - target) ** 2).mean(dim=(2, 3))
    return (err * target_weight).sum() / target_weight.sum().clamp_min(1.0)


class HeatmapDecoder(nn.Module):
    """Stride-32 backbone features -> stride-8 keypoint heatmaps (two bilinear x2 upsamplings + 3x3 convs).

    Not part of DWPose and never exported: with `TrainConfig.heatmap_decoder` the heatmap warm-up is
    computed on this dense map instead of the head's 8x6 `final_layer` grid, whose 32-pixel cells are as
    coarse as the mean-pose error, so the backbone gets a local signal (SimpleBaseline-style supervision).
    """

    def __init__(self, in_channels: int, num_keypoints: int, width: int = 128) -> None:
        super().__init__()

        def block(cin: int, cout: int, k: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.layers = nn.Sequential(
            *block(in_channels, width, 1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), *block(width, width, 3),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), *block(width, width, 3),
            nn.Conv2d(width, num_keypoints, 1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.layers(feats)
