"""TPD trainer: stage 1 (distil from a frozen teacher), stage 2 (head-only self-KD), or plain GT training.

One loop, top to bottom. CPU or CUDA (+AMP); DDP via `torchrun` (gloo on CPU, nccl on CUDA) with
batch norm synchronised across processes. Checkpoints are mmpose-format (`meta` + `state_dict` with
`backbone.*`/`head.*`, EMA weights) plus a `train_state` for resuming; `final.pth` holds only the former.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

from dwpose_edge import Estimator, __version__
from dwpose_edge.errors import DwposeEdgeError, InputError, RuntimeUnavailableError
from dwpose_edge.evaluation.metric import evaluate_estimator
from dwpose_edge.models import build_model, load_checkpoint
from dwpose_edge.models.rtmcc_head import RTMCCHead
from dwpose_edge.specs import NUM_KEYPOINTS, PARTS, SIMCC_SPLIT_RATIO, get_spec
from dwpose_edge.train.data import WORKER_CONTEXT, AugConfig, WholeBodyDataset
from dwpose_edge.train.losses import (FEATURE_ALPHA_CODE, HeatmapDecoder, KLDiscretLoss, Stage1Loss, Stage2Loss,
                                      heatmap_warmup_loss)
from dwpose_edge.train.schedule import ExpMomentumEMA, learning_rate, param_groups
from dwpose_edge.train.sync_bn import convert_sync_bn

STAGES = ("stage1", "stage2", "plain")


class TrainConfigError(DwposeEdgeError, ValueError):
    """A training option or config file is invalid; the message names the option or file and what is wanted."""


class TrainConfigNotFound(DwposeEdgeError, FileNotFoundError):
    """A config file, or the base file it names, does not exist."""


_SCALARS = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _check_type(name: str, annotation: str, value: Any) -> Any:
    """`value` if it fits a field annotated `annotation` (e.g. 'int | None'); YAML's '4e-3' strings become floats."""
    kinds = [k.strip() for k in annotation.split("|")]
    if value is None and "None" in kinds:
        return value
    wanted = [k for k in kinds if k != "None"]
    if len(wanted) != 1 or wanted[0] not in _SCALARS:
        return value  # dicts and the like: checked where they are used
    kind = wanted[0]
    if isinstance(value, str) and kind == "float":
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, _SCALARS[kind]) and not (isinstance(value, bool) and kind != "bool"):
        return value
    raise TrainConfigError(f"training option {name} must be {annotation}, got {value!r} ({type(value).__name__})")


# numeric options and the values they allow (None = the option's default where the field allows None)
POSITIVE = frozenset({"epochs", "batch_size", "lr", "val_interval", "max_iters_per_epoch", "clip_grad", "sigma_scale",
                      "cls_init_scale"})
NON_NEGATIVE = frozenset({"weight_decay", "warmup_iters", "alpha", "logit_weight", "num_workers", "heatmap_warmup",
                          "heatmap_warmup_iters", "aug_switch_epoch", "seed"})


def _check_range(name: str, value: Any) -> None:
    """One-line TrainConfigError for a numeric option out of its range (a negative learning rate would otherwise
    surface as a traceback from deep inside the optimizer)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if not math.isfinite(value):
        raise TrainConfigError(f"training option {name} must be a finite number, got {value!r}")
    if name in POSITIVE and value <= 0:
        raise TrainConfigError(f"training option {name} must be > 0, got {value!r}")
    if name in NON_NEGATIVE and value < 0:
        raise TrainConfigError(f"training option {name} must be >= 0, got {value!r}")


@dataclass
class TrainConfig:
    """Defaults follow the released DWPose configs (s1_dis: 270 epochs, s2_dis: 60 epochs)."""

    stage: str = "stage1"
    student: str = "dwpose-t"
    teacher: str | None = None            # stage1: variant of the frozen teacher
    teacher_weights: str | None = None    # stage1: its checkpoint
    student_weights: str | None = None    # stage2: the stage-1 checkpoint (its backbone is frozen)
    init_weights: str | None = None       # stage1/plain: start the student from this checkpoint (curriculum)
    heatmap_warmup: float = 0.0           # not DWPose: weight of losses.heatmap_warmup_loss at iteration 0 ...
    heatmap_warmup_iters: int = 0         # ... decayed linearly to 0 over this many iterations (from scratch)
    cls_init_scale: float = 1.0           # not DWPose: scale the fresh cls_x/cls_y weights (0.05: start near
                                          # uniform logits instead of a KL of ~12 that crushes the features)
    part_weights: dict[str, float] | None = None  # loss weight per part (specs.PARTS names; missing = 1),
                                          # as mmpose's dataset keypoint weights; e.g. body first from scratch
    sigma_scale: float = 1.0              # not DWPose: wider SimCC targets (x sigma) for a from-scratch start
    heatmap_decoder: bool = False         # warm-up on a temporary stride-8 decoder instead of the 8x6 final_layer
    ann: str = ""
    images: str = ""
    val_ann: str | None = None
    val_images: str | None = None
    out: str = "work_dirs/dwpose"
    epochs: int | None = None             # None: 270 (stage1/plain) or 60 (stage2)
    batch_size: int = 64                  # per process (configs: 8 GPUs x 64)
    lr: float = 4e-3
    weight_decay: float = 0.05
    warmup_iters: int = 1000
    alpha: float = FEATURE_ALPHA_CODE     # feature-loss weight (paper: 5e-5)
    logit_weight: float | None = None     # None: 0.1 in stage 1, 1.0 (gamma) in stage 2
    ema: bool = True
    augment: bool = True                  # False: plain crops (debugging, overfitting tests)
    aug: str = "rtmpose"                  # augmentation preset when augment: rtmpose | light | none
    shuffle: bool = True
    aug_switch_epoch: int | None = None   # None: epochs - epochs/9 (240 of 270, RTMPose's stage-2 pipeline)
    teacher_train_mode: bool = False      # mmpose quirk: its distiller runs the teacher's BN in train mode
    frozen_bn_train_mode: bool = False    # mmpose quirk (stage 2): frozen backbone BN keeps batch stats
    num_workers: int = 2
    device: str = "cpu"
    amp: bool = False                     # CUDA: float16 + GradScaler; CPU: bfloat16 autocast (fast with AVX512-BF16/AMX)
    clip_grad: float | None = None        # max global grad norm (the synth configs: 1.0, ~10x the typical norm;
                                          # from scratch, rare bad batches otherwise kick the loss up 10-30x)
    channels_last: bool = False           # NHWC activations: same maths, ~1.2x faster CPU convolutions (other
                                          # summation order, so not bit-identical to NCHW)
    seed: int = 0
    val_interval: int = 10
    max_iters_per_epoch: int | None = None
    resume: str | None = None             # a checkpoint written by this trainer (e.g. out/latest.pth)
    progress: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        types = {f.name: str(f.type) for f in fields(cls)}
        unknown = sorted(set(d) - set(types))
        if unknown:
            raise TrainConfigError(f"unknown training options {unknown}; valid: {sorted(types)}")
        values = {k: _check_type(k, types[k], v) for k, v in d.items()}
        for name, value in values.items():
            _check_range(name, value)
        if values.get("stage", "stage1") not in STAGES:
            raise TrainConfigError(f"training stage must be one of {list(STAGES)}, got {values['stage']!r}")
        for role in ("student", "teacher"):
            if values.get(role) is not None:
                try:
                    get_spec(values[role])
                except InputError as exc:
                    raise TrainConfigError(f"{role}: {exc}") from None
        return cls(**values)


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Options from a .toml, .yaml/.yml or .json file (keys as TrainConfig fields).

    A file may name ``base = "other.toml"`` (relative to itself): the base's options are read first and the
    file's own override them, tables (such as ``part_weights``) key by key, so the runs of one experiment
    keep their shared settings in one place.
    """
    return _load_config(Path(path), ())


def _load_config(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    path = path.resolve()
    if path in chain:
        raise TrainConfigError(f"config {path} inherits from itself: {' -> '.join(str(p) for p in chain + (path,))}")
    if not path.is_file():
        via = f" (base of {chain[-1]})" if chain else ""
        raise TrainConfigNotFound(f"config file {path} not found{via}")
    options = _parse_config(path)
    base = options.pop("base", None)
    if base is None:
        return options
    if not isinstance(base, str):
        raise TrainConfigError(f"{path}: 'base' must be a file name, got {base!r}")
    return _merge(_load_config(path.parent / base, chain + (path,)), options)


def _parse_config(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix == ".toml":
        fmt, errors, parse = "TOML", (ValueError,), tomllib.loads
    elif path.suffix in (".yaml", ".yml"):
        import yaml

        fmt, errors, parse = "YAML", (yaml.YAMLError,), lambda t: yaml.safe_load(t) or {}
    else:
        fmt, errors, parse = "JSON (config files are .toml, .yaml/.yml or .json)", (ValueError,), json.loads
    try:
        options = parse(text)
    except errors as exc:
        raise TrainConfigError(f"{path} is not valid {fmt}: {' '.join(str(exc).split())}") from exc
    if not isinstance(options, dict):
        raise TrainConfigError(f"{path} must hold a table of TrainConfig fields, got a {type(options).__name__}")
    return dict(options)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class TrainStep(nn.Module):
    """Everything that runs in one training step; DDP wraps this, so its trainable parts sync."""

    def __init__(self, cfg: TrainConfig, student: nn.Module, teacher: nn.Module | None) -> None:
        super().__init__()
        self.stage = cfg.stage
        self.student = student
        self.teacher = teacher
        if cfg.stage == "stage1":
            self.loss = Stage1Loss(student.backbone.out_channels, teacher.backbone.out_channels, alpha=cfg.alpha,
                                   logit_weight=0.1 if cfg.logit_weight is None else cfg.logit_weight)
        elif cfg.stage == "stage2":
            self.loss = Stage2Loss(gamma=1.0 if cfg.logit_weight is None else cfg.logit_weight)
        else:
            self.loss = KLDiscretLoss()
        self.decoder = (HeatmapDecoder(student.backbone.out_channels, NUM_KEYPOINTS)
                        if cfg.heatmap_decoder and cfg.heatmap_warmup > 0 and cfg.stage != "stage2" else None)

    def forward(self, img: torch.Tensor, target_x: torch.Tensor, target_y: torch.Tensor,
                target_weight: torch.Tensor, epoch: int, max_epochs: int, keypoints: torch.Tensor | None = None,
                heatmap_weight: float = 0.0) -> dict[str, torch.Tensor]:
        if self.stage == "stage2":
            with torch.no_grad():
                feat = self.student.backbone(img)
                teacher_logits = _float(self.teacher(feat))  # the stage-1 head
            return self.loss(student_logits=_float(self.student.head(feat)), teacher_logits=teacher_logits)
        feat = self.student.backbone(img)
        logits = _float(self.student.head(feat))
        warmup = {}
        if heatmap_weight > 0 and keypoints is not None:
            maps = (self.decoder(feat) if self.decoder is not None else self.student.head.final_layer(feat)).float()
            warmup = {"loss_heatmap_warmup": heatmap_weight * heatmap_warmup_loss(
                maps, keypoints, target_weight, (img.shape[-1], img.shape[-2]))}
        if self.stage == "plain":
            return {"loss_kpt": self.loss(logits, (target_x, target_y), target_weight), **warmup}
        with torch.no_grad():
            t_feat = self.teacher.backbone(img)
            t_logits = _float(self.teacher.head(t_feat))
        return {**self.loss(student_logits=logits, teacher_logits=t_logits, target=(target_x, target_y),
                            target_weight=target_weight, epoch=epoch, max_epochs=max_epochs,
                            student_feat=feat.float(), teacher_feat=t_feat.float()), **warmup}


def _keypoint_weights(part_weights: dict[str, float] | None) -> torch.Tensor | None:
    """(133,) loss weights from {part: weight}, or None."""
    if not part_weights:
        return None
    unknown = sorted(set(part_weights) - set(PARTS))
    if unknown:
        raise TrainConfigError(f"unknown part_weights keys {unknown}; parts: {list(PARTS)}")
    w = torch.ones(NUM_KEYPOINTS)
    for part, value in part_weights.items():
        if not (isinstance(value, (int, float)) and value >= 0):
            raise TrainConfigError(f"part_weights[{part!r}] must be a number >= 0, got {value!r}")
        lo, hi = PARTS[part]
        w[lo:hi] = float(value)
    return w


def _float(logits: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Losses in float32 also under autocast (bfloat16 logits lose the SimCC peak shape)."""
    return tuple(t.float() for t in logits)  # type: ignore[return-value]


def _build_models(cfg: TrainConfig) -> tuple[nn.Module, nn.Module | None]:
    student = build_model(cfg.student)
    if cfg.cls_init_scale != 1.0:
        with torch.no_grad():
            student.head.cls_x.weight.mul_(cfg.cls_init_scale)
            student.head.cls_y.weight.mul_(cfg.cls_init_scale)
    if cfg.init_weights:
        if cfg.stage == "stage2":
            raise TrainConfigError("stage2 starts from student_weights; init_weights is for stage1/plain")
        load_checkpoint(student, cfg.init_weights)
    if cfg.stage == "stage1":
        if not (cfg.teacher and cfg.teacher_weights):
            raise TrainConfigError("stage1 needs teacher and teacher_weights")
        teacher = load_checkpoint(build_model(cfg.teacher), cfg.teacher_weights)
        if teacher.spec.input_size != student.spec.input_size:
            raise TrainConfigError(f"teacher input {teacher.spec.input_size} differs from student "
                                   f"{student.spec.input_size}")
        teacher.requires_grad_(False)
        return student, teacher
    if cfg.stage == "stage2":
        if not cfg.student_weights:
            raise TrainConfigError("stage2 needs student_weights (the stage-1 checkpoint)")
        load_checkpoint(student, cfg.student_weights)
        teacher_head = student.head  # the trained stage-1 head is the teacher
        teacher_head.requires_grad_(False)
        spec = student.spec
        student.head = RTMCCHead(spec.head_in_channels, NUM_KEYPOINTS, spec.input_size, SIMCC_SPLIT_RATIO)
        student.backbone.requires_grad_(False)
        return student, teacher_head
    return student, None


def _set_modes(step: TrainStep, cfg: TrainConfig) -> None:
    step.train()
    if step.teacher is not None and not (cfg.stage == "stage1" and cfg.teacher_train_mode):
        step.teacher.eval()
    if cfg.stage == "stage2" and not cfg.frozen_bn_train_mode:
        step.student.backbone.eval()


def _distributed() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("DWPOSE_EDGE_DDP_BACKEND") != "gloo" else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world, int(os.environ.get("LOCAL_RANK", "0"))


def train(cfg: TrainConfig) -> Path:
    """Run the configured stage; returns the path of `final.pth` (mmpose format, EMA weights if enabled)."""
    if cfg.stage not in STAGES:
        raise TrainConfigError(f"stage must be one of {STAGES}, got {cfg.stage!r}")
    for name in ("cls_init_scale", "sigma_scale", "clip_grad"):
        value = getattr(cfg, name)
        if value is not None and not value > 0:
            raise TrainConfigError(f"{name} must be > 0, got {value!r}")
    try:
        AugConfig.preset(cfg.aug)  # an unknown preset fails before any data is read
    except ValueError as exc:
        raise TrainConfigError(str(exc)) from exc
    keypoint_weights = _keypoint_weights(cfg.part_weights)
    epochs = cfg.epochs or (60 if cfg.stage == "stage2" else 270)
    rank, world, local_rank = _distributed()
    device = torch.device(f"cuda:{local_rank}" if cfg.device == "cuda" else cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeUnavailableError("device='cuda' asked for but torch.cuda.is_available() is False: use device='cpu'")
    if keypoint_weights is not None:
        keypoint_weights = keypoint_weights.to(device)  # once, not per iteration
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)

    student, teacher = _build_models(cfg)
    step = TrainStep(cfg, student, teacher)
    if world > 1:
        step = (nn.SyncBatchNorm.convert_sync_batchnorm(step) if device.type == "cuda" else convert_sync_bn(step))
    step.to(device)
    if cfg.channels_last:
        step.to(memory_format=torch.channels_last)
    spec = student.spec
    sigma = tuple(v * cfg.sigma_scale for v in spec.sigma)
    dataset = WholeBodyDataset(cfg.ann, cfg.images, spec.input_size, sigma, train=True, seed=cfg.seed,
                               aug=AugConfig.preset(cfg.aug if cfg.augment else "none"))
    sampler = DistributedSampler(dataset, world, rank, shuffle=cfg.shuffle, seed=cfg.seed) if world > 1 else None
    generator = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=cfg.shuffle and sampler is None, sampler=sampler,
                        num_workers=cfg.num_workers, drop_last=len(dataset) >= cfg.batch_size * world,
                        generator=generator, persistent_workers=False, pin_memory=device.type == "cuda",
                        multiprocessing_context=WORKER_CONTEXT if cfg.num_workers > 0 else None)
    trainable = [m for m in (step.student, step.loss, step.decoder)
                 if m is not None and any(p.requires_grad for p in m.parameters())]
    optimizer = torch.optim.AdamW(param_groups(trainable, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999))
    ema = ExpMomentumEMA(step.student) if cfg.ema else None
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.type == "cuda")
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    ddp = nn.parallel.DistributedDataParallel(step, device_ids=[local_rank] if device.type == "cuda" else None,
                                          find_unused_parameters=step.decoder is not None) \
        if world > 1 else step

    start_epoch, it = 0, 0
    if cfg.resume:
        ckpt = torch.load(cfg.resume, map_location="cpu", weights_only=True)
        ts = ckpt["train_state"]
        step.student.load_state_dict(ts["student"])
        step.loss.load_state_dict(ts["loss"])
        if step.decoder is not None and ts.get("decoder"):
            step.decoder.load_state_dict(ts["decoder"])
        optimizer.load_state_dict(ts["optimizer"])
        if ema is not None and ts.get("ema"):
            ema.load_state_dict(ts["ema"])
        start_epoch, it = int(ckpt["meta"]["epoch"]), int(ckpt["meta"]["iter"])
    # s2_dis configs inherit the 270-epoch cosine that starts at epoch 135: over 60 epochs the LR stays constant
    cosine_begin = epochs if cfg.stage == "stage2" else None
    switch = cfg.aug_switch_epoch if cfg.aug_switch_epoch is not None else epochs - max(1, round(epochs / 9))
    iters_per_epoch = len(loader) if cfg.max_iters_per_epoch is None else min(len(loader), cfg.max_iters_per_epoch)
    history = []
    for epoch in range(start_epoch, epochs):
        dataset.set_epoch(epoch)
        generator.manual_seed(cfg.seed + epoch)  # the shuffle of an epoch does not depend on where a run resumed
        if sampler is not None:
            sampler.set_epoch(epoch)
        if epoch >= switch and cfg.stage != "stage2" and cfg.augment and cfg.aug == "rtmpose":
            dataset.aug = AugConfig.rtmpose_stage2()
        _set_modes(step, cfg)
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        bar = _progress(loader, iters_per_epoch, f"epoch {epoch + 1}/{epochs}", cfg.progress and rank == 0)
        for i, batch in enumerate(bar):
            if i >= iters_per_epoch:
                break
            lr = learning_rate(it, epoch + i / iters_per_epoch, base_lr=cfg.lr, max_epochs=epochs,
                               warmup_iters=cfg.warmup_iters, cosine_begin=cosine_begin)
            for g in optimizer.param_groups:
                g["lr"] = lr
            args = [batch[k].to(device, non_blocking=True) for k in ("img", "target_x", "target_y", "target_weight")]
            if keypoint_weights is not None:
                args[3] = args[3] * keypoint_weights
            hm = cfg.heatmap_warmup * max(0.0, 1.0 - it / cfg.heatmap_warmup_iters) if cfg.heatmap_warmup_iters else 0.0
            extra = (batch["keypoints"].to(device, non_blocking=True), hm) if hm > 0 else ()
            if cfg.channels_last:
                args[0] = args[0].contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=cfg.amp):
                losses = ddp(*args, epoch, epochs, *extra)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch}, iter {it}: {losses}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.clip_grad is not None:
                scaler.unscale_(optimizer)
                norm = torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]],
                                                      cfg.clip_grad)
                sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(norm)
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update(step.student)
            it += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}", lr=f"{lr:.2e}")
        n = max(1, min(iters_per_epoch, i + 1))
        record = {"epoch": epoch + 1, "iter": it, "lr": lr, "time_s": round(time.perf_counter() - t0, 2),
                  **{k: v / n for k, v in sums.items()}}
        if rank == 0:
            if cfg.val_ann and ((epoch + 1) % cfg.val_interval == 0 or epoch + 1 == epochs):
                record["val"] = evaluate_weights(cfg.student, _export_state(step, ema), cfg.val_ann, cfg.val_images)
            history.append(record)
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
                           if k != "val") + (f" val_AP={record['val']['wholebody']['AP']:.4f}" if "val" in record else ""),
                  flush=True)
            _save(out / "latest.pth", cfg, step, optimizer, ema, epoch + 1, it)
    final = out / "final.pth"
    if rank == 0:
        torch.save({"meta": _meta(cfg, epochs, it), "state_dict": _export_state(step, ema)}, final)
    if world > 1:
        dist.barrier()
    return final


def _progress(loader, total: int, desc: str, enabled: bool):
    if not enabled:
        return loader

    return tqdm(loader, total=total, desc=desc, leave=False, dynamic_ncols=True)


def _export_state(step: TrainStep, ema: ExpMomentumEMA | None) -> dict[str, torch.Tensor]:
    state = ema.state if ema is not None else step.student.state_dict()
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items() if k.startswith(("backbone.", "head."))}


def _meta(cfg: TrainConfig, epoch: int, it: int) -> dict[str, Any]:
    return {"epoch": epoch, "iter": it, "stage": cfg.stage, "model": cfg.student, "dwpose_edge": __version__,
            "config": json.loads(json.dumps(asdict(cfg))), "dataset_meta": {"dataset_name": "coco_wholebody"}}


def _save(path: Path, cfg: TrainConfig, step: TrainStep, optimizer, ema, epoch: int, it: int) -> None:
    state = {"meta": _meta(cfg, epoch, it), "state_dict": _export_state(step, ema),
             "train_state": {"student": step.student.state_dict(), "loss": step.loss.state_dict(),
                             "optimizer": optimizer.state_dict(), "ema": ema.state_dict() if ema else None,
                             "decoder": step.decoder.state_dict() if step.decoder is not None else None}}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def evaluate_weights(model: str, state: dict, ann: str, images: str) -> dict:
    """COCO-WholeBody AP of a state dict on GT boxes (torch runtime, no flip)."""
    return evaluate_estimator(Estimator(model, weights=state, runtime="torch"), ann, images, progress=False)

