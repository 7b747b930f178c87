"""Write replicas of the `.pth` layouts DWPose users download, with the REAL mmengine 0.10.7 objects
(runs inside the venv of make_venv.sh; numpy 1, so the pickles name numpy.core.* as released files do).

    python write_checkpoints.py --out DIR [--seed 0]

One seeded dwpose-t distiller (student + teacher, both built by mmpose from the official config) goes
through mmengine as a DWPose training run would: an `ExpMomentumEMA` of it (EMAHook's model), a
`MessageHub` after `update_scalar` / `update_info`, real parameter schedulers, Runner.save_checkpoint's
dict, `EMAHook.before_save_checkpoint` (which swaps the EMA weights into `state_dict` and the raw ones
into `ema_state_dict`), `mmengine.runner.save_checkpoint`, and then the released tools' steps:

  plain.pth               the deployable weights W alone (a bare OrderedDict: the reference)
  hf.pth                  DWPose's mmpose/pth_transfer.py: `student.*` kept with the prefix stripped,
                          `optimizer` popped (meta, state_dict, message_hub, param_schedulers,
                          ema_state_dict). HistoryBuffer pickled as the mmengine that wrote the Hugging
                          Face files did (its attribute dict only): the file names exactly the globals
                          of Hugging Face's scan of yzd-v/DWPose.
  hf_mmengine_0_10.pth    the same, HistoryBuffer pickled by mmengine 0.10.7 as is (its __getstate__
                          adds `statistics_methods`, pickled as getattr(HistoryBuffer, 'min'), ...)
  hf_legacy.pth           hf.pth's dict in the legacy `_use_new_zipfile_serialization=False` format
  plain_two_dis.pth,
  hf_two_dis.pth          pth_transfer.py --two_dis (dw-tt_ucoco.pth: teacher.backbone + student.head)
  openmmlab.pth,
  openmmlab_legacy.pth    mmpose 1.x tools/misc/publish_model.py applied to hf.pth's checkpoint:
                          optimizer, message_hub, ema_state_dict and data_preprocessor.* dropped
                          (meta, state_dict, param_schedulers); also in the legacy format
  poison_*.pth            hf.pth's layout with a payload that runs `touch "$DWPOSE_EDGE_PAYLOAD_MARKER"`
                          when unpickled, nested in: a HistoryBuffer of message_hub['log_scalars']
                          (subprocess.call), meta['dataset_meta'] (os.system), ema_state_dict,
                          the legacy format; and getattr(HistoryBuffer, '__init__') in message_hub.
                          Their ema_state_dict keeps `steps` and one student tensor (size).
  info.json               versions, top-level keys and sizes of the files

Nothing here imports dwpose_edge: this side is mmpose/mmengine only.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from collections import OrderedDict
from contextlib import contextmanager

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mmpose_dump as md  # noqa: E402  (stubs, build, randomize_; sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

MARKER_CMD = 'touch "$DWPOSE_EDGE_PAYLOAD_MARKER"'


class Payload:
    """Unpickled by a plain pickle loader, this runs MARKER_CMD (through os.system or subprocess.call)."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __reduce__(self):
        if self.how == "os.system":
            return (os.system, (MARKER_CMD,))
        return (subprocess.call, (["sh", "-c", MARKER_CMD],))


class GetattrOf:
    """Unpickles as getattr(owner, name)."""

    def __init__(self, owner, name: str) -> None:
        self.owner, self.name = owner, name

    def __reduce__(self):
        return (getattr, (self.owner, self.name))


class Distiller(nn.Module):
    """The state-dict layout of DWPose's DWPoseDistiller: `student.*` and `teacher.*`."""

    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__()
        self.student, self.teacher = student, teacher


def seeded_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = md.build("dwpose-t")
    w, h = model.cfg.codec["input_size"]
    calib = torch.from_numpy(np.random.default_rng(seed).standard_normal((4, 3, h, w)).astype(np.float32))
    md.randomize_(model, seed + 1000, calib)
    return model


def message_hub_state(dataset_meta: dict) -> dict:
    """A MessageHub as a DWPose run leaves it: log scalars, runtime info (a numpy best_score, as
    CheckpointHook's save_best records it), resumed keys; then Runner's apply_to(... .cpu())."""
    from mmengine.logging import MessageHub
    from mmengine.utils import apply_to

    hub = MessageHub.get_instance("dwpose_edge_replica")
    rng = np.random.default_rng(7)
    for it in range(5):
        hub.update_scalar("train/lr", 4e-3 * (1 - it / 10))
        hub.update_scalar("train/loss", float(rng.uniform(0.5, 1.0)))
        hub.update_scalar("train/loss_kpt", torch.tensor(float(rng.uniform(0.4, 0.9))))  # tensors -> item()
        hub.update_scalar("train/acc_pose", float(rng.uniform(0.6, 0.8)))
        hub.update_scalar("train/time", 0.35, count=64)
    hub.update_scalar("coco-wholebody/AP", 0.662)
    hub.update_info("epoch", 270)
    hub.update_info("iter", 270 * 1000)
    hub.update_info("max_epochs", 270)
    hub.update_info("max_iters", 270 * 1000)
    hub.update_info("best_score", np.float64(0.662))
    hub.update_info("best_ckpt", "work_dirs/dwpose_t/best_coco-wholebody_AP_epoch_270.pth")
    hub.update_info("last_ckpt", "work_dirs/dwpose_t/epoch_270.pth")
    hub.update_info("dataset_meta", dataset_meta)
    return apply_to(hub.state_dict(), lambda x: hasattr(x, "cpu"), lambda x: x.cpu())


def param_scheduler_states(params) -> tuple[list, dict]:
    """state_dict() of the schedulers of the RTMPose configs (LinearLR warm-up + CosineAnnealingLR)."""
    from mmengine.optim import CosineAnnealingLR, LinearLR

    opt = torch.optim.AdamW(params, lr=4e-3, weight_decay=0.05)
    scheds = [LinearLR(opt, start_factor=1e-5, by_epoch=False, begin=0, end=1000),
              CosineAnnealingLR(opt, eta_min=2e-4, begin=135, end=270, T_max=135, by_epoch=True)]
    return [s.state_dict() for s in scheds], opt.state_dict()


def training_checkpoint(seed: int) -> dict:
    """Runner.save_checkpoint's dict for a distiller run with EMAHook, after before_save_checkpoint."""
    import mmengine
    from mmengine.hooks import EMAHook
    from mmpose.engine.hooks.ema_hook import ExpMomentumEMA  # the ema_type of the RTMPose/DWPose configs
    from mmengine.runner.checkpoint import weights_to_cpu
    from mmpose.datasets.datasets.utils import parse_pose_metainfo

    import mmpose

    student, teacher = seeded_model(seed), seeded_model(seed + 1)
    cfg_text = student.cfg.pretty_text
    model = Distiller(student, teacher)
    # gamma=1 (configs: 2000) so that one update mixes 14 % of the new weights: the EMA (deployed,
    # `state_dict`) and the raw weights (`ema_state_dict`) then give clearly different keypoints.
    ema = ExpMomentumEMA(model, momentum=0.0002, gamma=1, update_buffers=True)
    ema.update_parameters(model)  # first update copies
    g = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():  # the raw weights move on with training
        for p in model.student.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1 * (p.std() if p.numel() > 1 else p.abs() + 0.1))
    ema.update_parameters(model)

    metainfo = os.path.join(os.path.dirname(mmpose.__file__), ".mim", "configs", "_base_", "datasets",
                            "coco_wholebody.py")
    dataset_meta = parse_pose_metainfo(dict(from_file=metainfo))
    meta = dict(epoch=270, iter=270 * 1000, cfg=cfg_text, seed=seed, experiment_name="dwpose_t_replica",
                time=time.strftime("%Y%m%d_%H%M%S"), mmengine_version=mmengine.__version__,
                dataset_meta=dataset_meta)
    schedulers, optimizer = param_scheduler_states(model.student.parameters())
    ckpt = {"meta": meta, "state_dict": weights_to_cpu(model.state_dict()),
            "message_hub": message_hub_state(dataset_meta), "optimizer": optimizer,
            "param_schedulers": schedulers}
    hook = EMAHook(ema_type="ExpMomentumEMA", momentum=0.0002, update_buffers=True, priority=49)
    hook.ema_model = ema
    hook.before_save_checkpoint(None, ckpt)
    return ckpt


def pth_transfer(ckpt: dict, two_dis: bool) -> dict:
    """DWPose mmpose/pth_transfer.py's steps: keep the student (or teacher backbone + student head),
    prefix stripped, as an OrderedDict `state_dict`; pop `optimizer`; keep everything else."""
    out = dict(ckpt)
    if two_dis:
        keep = [(k[len("teacher."):] if k.startswith("teacher.") else k[len("student."):], v)
                for k, v in ckpt["state_dict"].items() if k.startswith(("teacher.backbone", "student.head"))]
    else:
        keep = [(k[len("student."):], v) for k, v in ckpt["state_dict"].items() if k.startswith("student.")]
    out["state_dict"] = OrderedDict(keep)
    out.pop("optimizer", None)
    return out


def publish_model(ckpt: dict) -> dict:
    """mmpose 1.x tools/misc/publish_model.py's steps."""
    out = {k: v for k, v in ckpt.items() if k not in ("optimizer", "message_hub", "ema_state_dict")}
    out["state_dict"] = OrderedDict((k, v) for k, v in ckpt["state_dict"].items()
                                    if not k.startswith("data_preprocessor"))
    return out


@contextmanager
def history_buffer_pickling(style: str):
    """'released': HistoryBuffer pickles its attribute dict only (the mmengine that wrote the Hugging
    Face files: their scan names no getattr); 'mmengine': 0.10.7's own __getstate__."""
    from mmengine.logging.history_buffer import HistoryBuffer

    original = HistoryBuffer.__getstate__
    if style == "released":
        HistoryBuffer.__getstate__ = lambda self: {k: v for k, v in self.__dict__.items()
                                                   if k != "statistics_methods"}
    try:
        yield
    finally:
        HistoryBuffer.__getstate__ = original


def save(obj: dict, path: str, style: str = "released", legacy: bool = False) -> None:
    with history_buffer_pickling(style):
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.time()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    md.install_stubs()
    import mmengine
    import mmpose
    import mmpose.models  # noqa: F401  (registers CSPNeXt, RTMCCHead, ...)
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.runner.checkpoint import save_checkpoint

    os.makedirs(args.out, exist_ok=True)
    out = lambda name: os.path.join(args.out, name)  # noqa: E731

    # The training checkpoint goes through mmengine's own save and a plain torch.load, as the
    # transfer tools read it.
    train_path = out("train_epoch_270.pth")
    save_checkpoint(training_checkpoint(args.seed), train_path)
    train = torch.load(train_path, map_location="cpu", weights_only=False)
    os.remove(train_path)
    assert sorted(train) == ["ema_state_dict", "message_hub", "meta", "optimizer", "param_schedulers",
                             "state_dict"], sorted(train)

    hf = pth_transfer(train, two_dis=False)
    two = pth_transfer(train, two_dis=True)
    save(OrderedDict(hf["state_dict"]), out("plain.pth"))
    save(hf, out("hf.pth"))
    save(hf, out("hf_mmengine_0_10.pth"), style="mmengine")
    save(hf, out("hf_legacy.pth"), legacy=True)
    save(OrderedDict(two["state_dict"]), out("plain_two_dis.pth"))
    save(two, out("hf_two_dis.pth"))
    published = publish_model(hf)
    save(published, out("openmmlab.pth"))
    save(published, out("openmmlab_legacy.pth"), legacy=True)

    # poisoned variants: hf.pth's layout, ema_state_dict cut to `steps` + one tensor to stay small
    small_ema = OrderedDict([("steps", hf["ema_state_dict"]["steps"])])
    first = next(k for k in hf["ema_state_dict"] if k.startswith("module.student."))
    small_ema[first] = hf["ema_state_dict"][first]

    def poisoned(where: str, payload) -> dict:
        ck = copy.deepcopy({**hf, "ema_state_dict": small_ema})
        if where == "message_hub":
            ck["message_hub"]["log_scalars"]["train/loss"].__dict__["_log_history"] = payload
        elif where == "meta":
            ck["meta"]["dataset_meta"]["skeleton_links"].append(payload)
        elif where == "ema_state_dict":
            ck["ema_state_dict"]["module.student.backbone.stem.0.conv.weight"] = payload
        return ck

    save(poisoned("message_hub", Payload("subprocess.call")), out("poison_message_hub.pth"))
    save(poisoned("meta", Payload("os.system")), out("poison_meta.pth"))
    save(poisoned("ema_state_dict", Payload("subprocess.call")), out("poison_ema_state_dict.pth"))
    save(poisoned("message_hub", Payload("subprocess.call")), out("poison_message_hub_legacy.pth"), legacy=True)
    save(poisoned("message_hub", GetattrOf(HistoryBuffer, "__init__")), out("poison_getattr.pth"))

    files = sorted(f for f in os.listdir(args.out) if f.endswith(".pth"))
    info = dict(mmpose=mmpose.__version__, mmengine=mmengine.__version__, torch=torch.__version__,
                numpy=np.__version__, python=sys.version.split()[0], seed=args.seed,
                top_level_keys={f: list(torch.load(out(f), map_location="cpu", weights_only=False))
                                for f in files if not f.startswith(("poison", "plain"))},
                sizes={f: os.path.getsize(out(f)) for f in files}, seconds=round(time.time() - t0, 1))
    with open(out("info.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
