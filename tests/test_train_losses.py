"""Training losses against hand-written float64 references of mmpose's formulas (numpy loops)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dwpose_edge.train.losses import (FEATURE_ALPHA_CODE, FEATURE_ALPHA_PAPER, STAGE1_LOGIT_WEIGHT, FeatureLoss,
                                      KLDiscretLoss, LogitLoss, Stage1Loss, Stage2Loss, distill_weight,
                                      distill_weight_paper)


def _softmax(v: np.ndarray) -> np.ndarray:
    e = np.exp(v - v.max())
    return e / e.sum()


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) for probability vectors, 0 * log 0 = 0."""
    return float(sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q) if pi > 0))


def ref_kldiscret(pred, target, weight, beta=10.0, label_beta=10.0) -> float:
    """mmpose KLDiscretLoss: sum over n,k of w * mean_bins KL(softmax(t*lb) || softmax(p*b)), / K, x + y."""
    total = 0.0
    n_, k_ = weight.shape
    for p_ax, t_ax in zip(pred, target):
        for n in range(n_):
            for k in range(k_):
                p, t = _softmax(p_ax[n, k] * beta), _softmax(t_ax[n, k] * label_beta)
                total += weight[n, k] * _kl(t, p) / p_ax.shape[-1]
    return total / k_


def ref_logit(student, teacher, beta=10.0, weight=1.0) -> float:
    """DWPose logit loss: mean over n of sum over k, bins of KL(softmax(T*b) || softmax(S*b)), x + y, * w / K."""
    total = 0.0
    n_, k_, _ = student[0].shape
    for s_ax, t_ax in zip(student, teacher):
        per_sample = [sum(_kl(_softmax(t_ax[n, k] * beta), _softmax(s_ax[n, k] * beta)) for k in range(k_))
                      for n in range(n_)]
        total += weight * sum(per_sample) / n_
    return total / k_


@pytest.fixture()
def simcc():
    g = np.random.default_rng(0)
    n, k, wx, wy = 2, 3, 12, 16
    pred = (g.normal(size=(n, k, wx)) * 0.3, g.normal(size=(n, k, wy)) * 0.3)
    target = (g.random((n, k, wx)), g.random((n, k, wy)))
    teacher = (g.normal(size=(n, k, wx)) * 0.3, g.normal(size=(n, k, wy)) * 0.3)
    weight = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    return pred, target, teacher, weight


def _t(arrs):
    return tuple(torch.tensor(a, dtype=torch.float64) for a in arrs)


def test_kldiscret_matches_reference(simcc):
    pred, target, _, weight = simcc
    got = KLDiscretLoss()(_t(pred), _t(target), torch.tensor(weight)).item()
    assert got == pytest.approx(ref_kldiscret(pred, target, weight), rel=1e-10)
    # weight-0 rows do not count; use_target_weight=False counts them
    ones = np.ones_like(weight)
    got_all = KLDiscretLoss(use_target_weight=False)(_t(pred), _t(target)).item()
    assert got_all == pytest.approx(ref_kldiscret(pred, target, ones), rel=1e-10)
    assert got_all > got


def test_kldiscret_sums_over_batch(simcc):
    """mmpose sums the batch (no mean): doubling the batch doubles the loss."""
    pred, target, _, weight = simcc
    loss = KLDiscretLoss()
    one = loss(_t(pred), _t(target), torch.tensor(weight)).item()
    two = loss(tuple(torch.cat([p, p]) for p in _t(pred)), tuple(torch.cat([t, t]) for t in _t(target)),
               torch.tensor(np.concatenate([weight, weight]))).item()
    assert two == pytest.approx(2 * one, rel=1e-12)


def test_logit_loss_matches_reference(simcc):
    pred, _, teacher, _ = simcc
    k = pred[0].shape[1]
    got = LogitLoss(beta=10.0, num_keypoints=k, weight=0.1)(_t(pred), _t(teacher)).item()
    assert got == pytest.approx(ref_logit(pred, teacher, weight=0.1), rel=1e-10)
    assert LogitLoss(num_keypoints=k)(_t(teacher), _t(teacher)).item() == pytest.approx(0.0, abs=1e-12)


def test_logit_loss_batch_mean_and_1_over_133():
    """Mean over the batch and /133: one differing keypoint in one of N samples gives KL / N / 133."""
    g = np.random.default_rng(1)
    n, k = 4, 133
    t = (g.normal(size=(n, k, 10)), g.normal(size=(n, k, 8)))
    s = (t[0].copy(), t[1].copy())
    s[0][2, 50] = g.normal(size=10)
    kl = _kl(_softmax(t[0][2, 50] * 10), _softmax(s[0][2, 50] * 10))
    got = LogitLoss(num_keypoints=133)(_t(s), _t(t)).item()
    assert got == pytest.approx(kl / n / 133, rel=1e-10)
    # duplicating the batch leaves a batch-mean unchanged
    dup = LogitLoss(num_keypoints=133)(tuple(torch.cat([a, a]) for a in _t(s)),
                                       tuple(torch.cat([a, a]) for a in _t(t))).item()
    assert dup == pytest.approx(got, rel=1e-12)
    with pytest.raises(ValueError, match="133"):
        LogitLoss(num_keypoints=133)(tuple(a[:, :10] for a in _t(s)), tuple(a[:, :10] for a in _t(t)))


def test_logit_loss_has_no_target_mask(simcc):
    """Changing the teacher on a keypoint the GT marks invisible still changes the loss (paper Sec. 5.6)."""
    pred, target, teacher, weight = simcc
    invisible = np.argwhere(weight == 0)[0]
    teacher2 = (teacher[0].copy(), teacher[1].copy())
    # a ramp, not a constant (softmax ignores constants)
    teacher2[0][tuple(invisible)] += np.linspace(-1.0, 1.0, teacher[0].shape[-1])
    k = pred[0].shape[1]
    a = LogitLoss(num_keypoints=k)(_t(pred), _t(teacher)).item()
    b = LogitLoss(num_keypoints=k)(_t(pred), _t(teacher2)).item()
    assert b != pytest.approx(a, rel=1e-6)
    assert b == pytest.approx(ref_logit(pred, teacher2), rel=1e-10)
    # while the GT loss ignores that keypoint entirely
    target2 = (target[0].copy(), target[1].copy())
    target2[0][tuple(invisible)] += np.linspace(-1.0, 1.0, target[0].shape[-1])
    w = torch.tensor(weight)
    assert KLDiscretLoss()(_t(pred), _t(target2), w).item() == pytest.approx(
        KLDiscretLoss()(_t(pred), _t(target), w).item(), rel=1e-12)


def test_logit_loss_gradient_only_to_student(simcc):
    pred, _, teacher, _ = simcc
    s = tuple(torch.tensor(a, requires_grad=True) for a in pred)
    t = tuple(torch.tensor(a, requires_grad=True) for a in teacher)
    LogitLoss(num_keypoints=3)(s, t).backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in s)
    assert all(a.grad is None for a in t)


def test_feature_loss_matches_reference():
    g = np.random.default_rng(2)
    n, cs, ct, h, w = 3, 4, 6, 5, 4
    fs = g.normal(size=(n, cs, h, w)).astype(np.float32)
    ft = g.normal(size=(n, ct, h, w)).astype(np.float32)
    loss = FeatureLoss(cs, ct)
    assert loss.alpha == FEATURE_ALPHA_CODE == 7e-5 and FEATURE_ALPHA_PAPER == 5e-5
    wgt = g.normal(size=(ct, cs)).astype(np.float32)
    bias = g.normal(size=ct).astype(np.float32)
    with torch.no_grad():
        loss.align.weight.copy_(torch.from_numpy(wgt)[:, :, None, None])
        loss.align.bias.copy_(torch.from_numpy(bias))
    aligned = np.einsum("oc,nchw->nohw", wgt.astype(np.float64), fs) + bias[None, :, None, None]
    want = ((aligned - ft) ** 2).sum() / n * 7e-5
    got = loss(torch.from_numpy(fs), torch.from_numpy(ft)).item()
    assert got == pytest.approx(want, rel=1e-5)
    # the paper's alpha scales it linearly
    paper = FeatureLoss(cs, ct, alpha=FEATURE_ALPHA_PAPER)
    paper.load_state_dict(loss.state_dict())
    assert paper(torch.from_numpy(fs), torch.from_numpy(ft)).item() == pytest.approx(want * 5 / 7, rel=1e-5)
    # equal channel counts: no conv (mmpose's align=None), plain sum of squares / N
    same = FeatureLoss(ct, ct)
    assert same.align is None and not list(same.parameters())
    assert same(torch.from_numpy(ft + 1), torch.from_numpy(ft)).item() == pytest.approx(
        ft.size / n * 7e-5, rel=1e-5)
    assert sorted(loss.state_dict()) == ["align.bias", "align.weight"]


def test_feature_loss_trains_align_not_teacher():
    loss = FeatureLoss(2, 3)
    fs = torch.randn(2, 2, 3, 3, requires_grad=True)
    ft = torch.randn(2, 3, 3, 3, requires_grad=True)
    loss(fs, ft).backward()
    assert loss.align.weight.grad is not None and fs.grad is not None and ft.grad is None


def test_distill_weight_schedule():
    assert distill_weight(0, 270) == 1.0
    assert distill_weight(269, 270) == pytest.approx(1 / 270)
    assert distill_weight_paper(1, 270) == 1.0
    assert distill_weight_paper(270, 270) == pytest.approx(1 / 270)
    for epoch in range(270):
        assert distill_weight(epoch, 270) == distill_weight_paper(epoch + 1, 270)
    for bad in ((270, 270), (-1, 270)):
        with pytest.raises(ValueError):
            distill_weight(*bad)
    with pytest.raises(ValueError):
        distill_weight_paper(0, 270)


def test_stage1_and_stage2_combine(simcc):
    pred, target, teacher, weight = simcc
    k = pred[0].shape[1]
    fs, ft = torch.randn(2, 4, 3, 2, dtype=torch.float64), torch.randn(2, 6, 3, 2, dtype=torch.float64)
    s1 = Stage1Loss(4, 6, num_keypoints=k).double()
    out = s1(student_logits=_t(pred), teacher_logits=_t(teacher), target=_t(target),
             target_weight=torch.tensor(weight), epoch=54, max_epochs=270, student_feat=fs, teacher_feat=ft)
    r = 1 - 54 / 270
    assert set(out) == {"loss_kpt", "loss_fea", "loss_logit"}
    assert out["loss_kpt"].item() == pytest.approx(ref_kldiscret(pred, target, weight), rel=1e-10)
    assert out["loss_logit"].item() == pytest.approx(r * ref_logit(pred, teacher, weight=STAGE1_LOGIT_WEIGHT),
                                                     rel=1e-10)
    assert out["loss_fea"].item() == pytest.approx(r * s1.feature(fs, ft).item(), rel=1e-12)
    assert len(list(s1.parameters())) == 2  # the align conv, for the optimizer
    s2 = Stage2Loss(num_keypoints=k)
    out2 = s2(student_logits=_t(pred), teacher_logits=_t(teacher))
    assert set(out2) == {"loss_logit"}
    assert out2["loss_logit"].item() == pytest.approx(ref_logit(pred, teacher, weight=1.0), rel=1e-10)


def test_heatmap_warmup_loss_is_zero_on_its_target_and_weighted():
    import torch

    from dwpose_edge.train.losses import heatmap_warmup_loss

    kp = torch.tensor([[[48.0, 80.0], [150.0, 200.0]]])  # (1, 2, 2) crop pixels of a 192x256 input
    w = torch.ones(1, 2)
    gx = (torch.arange(6) + 0.5) * 32
    gy = (torch.arange(8) + 0.5) * 32
    target = torch.exp(-0.5 * (((gy[None, :, None] - kp[0, :, 1, None, None]) / 32) ** 2
                               + ((gx[None, None, :] - kp[0, :, 0, None, None]) / 32) ** 2))[None]
    assert float(heatmap_warmup_loss(target, kp, w, (192, 256))) < 1e-12
    assert int(target[0, 0].argmax()) == 2 * 6 + 1  # keypoint (48, 80) is in cell (row 2, col 1)
    zeros = torch.zeros_like(target)
    full = float(heatmap_warmup_loss(zeros, kp, w, (192, 256)))
    assert full == pytest.approx(float((target ** 2).mean()), rel=1e-6)
    only_first = float(heatmap_warmup_loss(zeros, kp, torch.tensor([[1.0, 0.0]]), (192, 256)))
    assert only_first == pytest.approx(float((target[0, 0] ** 2).mean()), rel=1e-6)
