"""Dump reference tensors from the REAL mmpose 1.3.2 (runs inside the venv of make_venv.sh).

    python mmpose_dump.py --out DIR --image grace_hopper.jpg --boxes '[[x1,y1,x2,y2], ...]'

Writes into DIR:
  keys.json          {variant: [[state_dict key, shape], ...]} for dwpose-t/s/m/l/l-384
  VARIANT.pth        (for --logit-variants and --topdown-variants) seeded random weights in
                     mmpose's checkpoint format, as mmengine's Runner saves it: {'meta': {...,
                     'dataset_meta': parsed metainfo with numpy arrays}, 'state_dict': OrderedDict}
  dump.npz           logits on random inputs, mmpose's crops/centers/scales, inference_topdown
                     keypoints/scores (+ the logits it decoded), SimCCLabel decoding of crafted
                     logits, flip_indices (key names at the `arrays[...] =` lines below)
  info.json          versions and settings

Nothing here imports dwpose_edge: this side is mmpose only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from typing import Union

# mmengine 0.10.7 calls torch.load() without weights_only; torch >= 2.6 defaults it to True,
# which refuses the numpy arrays that mmpose puts in every checkpoint's meta['dataset_meta'].
# This is what any mmpose 1.3.2 user on torch >= 2.6 has to set.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

CONFIG_DIR = "wholebody_2d_keypoint/rtmpose/ubody"
VARIANTS = {  # SPEC.md's table: variant -> official config (student config of the DWPose distillers)
    "dwpose-t": "rtmpose-t_8xb64-270e_coco-ubody-wholebody-256x192.py",
    "dwpose-s": "rtmpose-s_8xb64-270e_coco-ubody-wholebody-256x192.py",
    "dwpose-m": "rtmpose-m_8xb64-270e_coco-ubody-wholebody-256x192.py",
    "dwpose-l": "rtmpose-l_8xb64-270e_coco-ubody-wholebody-256x192.py",
    "dwpose-l-384": "rtmpose-l_8xb32-270e_coco-ubody-wholebody-384x288.py",
}


def install_stubs() -> None:
    """Tiny in-memory stand-ins for what mmcv-lite lacks and the top-down path never calls."""
    # mmcv.ops: compiled CUDA/C++ ops (deformable conv/attention) imported at module level by
    # heads we do not use (EDPose, DEKR, PoseWarper).
    ops = types.ModuleType("mmcv.ops")

    class _CompiledOpStub(nn.Module):
        def __init__(self, *args, **kwargs):
            raise RuntimeError("mmcv.ops is stubbed in the conformance venv (mmcv-lite)")

    for name in ("DeformConv2d", "ModulatedDeformConv2d", "MultiScaleDeformableAttention",
                 "RoIAlign", "nms", "batched_nms"):
        setattr(ops, name, _CompiledOpStub)

    def _any_op(name: str):  # any other op name; dunders stay missing (inspect probes __file__)
        if name.startswith("__"):
            raise AttributeError(name)
        return _CompiledOpStub

    ops.__getattr__ = _any_op
    sys.modules["mmcv.ops"] = ops

    # mmdet.utils: imported by RTMOHead (ConfigType, reduce_mean) at registry import time.
    # A stub mmdet package also makes `_scope_='mmdet'` fall back to mmpose's own CSPNeXt,
    # exactly as it does for anyone who installed mmpose without mmdet.
    from mmengine.config import ConfigDict

    mmdet = types.ModuleType("mmdet")
    mmdet.__path__ = []  # a package, so `import mmdet.registry` fails with ModuleNotFoundError
    utils = types.ModuleType("mmdet.utils")
    utils.ConfigType = Union[ConfigDict, dict]
    utils.OptConfigType = Union[ConfigDict, dict, None]
    utils.reduce_mean = lambda tensor: tensor
    mmdet.utils = utils
    sys.modules["mmdet"] = mmdet
    sys.modules["mmdet.utils"] = utils

    # torchvision: only mmpose.visualization.simcc_vis imports ToPILImage (never called here).
    try:
        import torchvision  # noqa: F401
    except ImportError:
        tv = types.ModuleType("torchvision")
        tv.__path__ = []
        tvt = types.ModuleType("torchvision.transforms")
        tvt.ToPILImage = object
        tv.transforms = tvt
        sys.modules["torchvision"] = tv
        sys.modules["torchvision.transforms"] = tvt


def config_path(variant: str) -> str:
    import mmpose

    path = os.path.join(os.path.dirname(mmpose.__file__), ".mim", "configs", CONFIG_DIR, VARIANTS[variant])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"official config missing from the mmpose wheel: {path}")
    return path


def load_config(variant: str):
    from mmengine.config import Config

    cfg = Config.fromfile(config_path(variant))
    cfg.model.backbone.init_cfg = None  # no pretrained download
    return cfg


def build(variant: str, checkpoint: str | None = None):
    """mmpose.apis.init_model: builds with SyncBN then revert_sync_batchnorm (-> BN), eval mode."""
    from mmpose.apis import init_model

    return init_model(load_config(variant), checkpoint=checkpoint, device="cpu")


def randomize_(model: nn.Module, seed: int, calib: torch.Tensor) -> None:
    """Seeded, deliberately non-default weights so eps/BN-folding/GAU bugs cannot hide.

    Every conv feeding a BN is scaled by a log-uniform factor in [0.02, 1], so many BN layers
    see variances of 1e-3..1e-4 and a 1e-3-vs-1e-5 eps mistake changes the outputs a lot.
    The BN running stats are then calibrated on `calib` (cumulative average over one batch,
    keeping activations O(1) through the 60+ layers instead of overflowing) and perturbed:
    mean += 0.2 sd N(0,1), var *= U(0.7, 1.4); BN weight U(0.5,1.5), bias N(0,0.2); conv/linear
    biases N(0,0.1); GAU gamma N(0,1), beta N(0,0.5); ScaleNorm g and Scale.scale U(0.5,1.5);
    num_batches_tracked a trained-looking count.
    """
    from torch.nn.modules.batchnorm import _BatchNorm

    g = torch.Generator().manual_seed(seed)

    def uniform(t, lo, hi):
        return (torch.rand(t.shape, generator=g) * (hi - lo) + lo).to(t.dtype)

    def normal(t, std, mean=0.0):
        return (torch.randn(t.shape, generator=g) * std + mean).to(t.dtype)

    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    with torch.no_grad():
        for mod in model.modules():
            conv, bn = getattr(mod, "conv", None), getattr(mod, "bn", None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, _BatchNorm):  # mmcv ConvModule
                conv.weight.mul_(float(np.exp(uniform(torch.zeros(()), np.log(0.02), 0.0))))
            if isinstance(mod, _BatchNorm):
                mod.weight.copy_(uniform(mod.weight, 0.5, 1.5))
                mod.bias.copy_(normal(mod.bias, 0.2))
            elif isinstance(mod, (nn.Conv2d, nn.Linear)) and mod.bias is not None:
                mod.bias.copy_(normal(mod.bias, 0.1))
            cls = type(mod).__name__
            if cls == "RTMCCBlock":
                mod.gamma.copy_(normal(mod.gamma, 1.0))
                mod.beta.copy_(normal(mod.beta, 0.5))
            elif cls == "ScaleNorm":
                mod.g.copy_(uniform(mod.g, 0.5, 1.5))
            elif cls == "Scale":
                mod.scale.copy_(uniform(mod.scale, 0.5, 1.5))
        # calibrate running stats: batch statistics, layer by layer, in one forward pass
        model.eval()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum, bn.training = None, True
        model(calib, None, mode="tensor")
        for bn in bns:
            bn.momentum, bn.training = 0.1, False
            sd = bn.running_var.sqrt()
            bn.running_mean.add_(normal(bn.running_mean, 0.2) * sd)
            bn.running_var.mul_(uniform(bn.running_var, 0.7, 1.4))
            bn.num_batches_tracked.fill_(123456)
    constant = [k for k, v in model.state_dict().items()
                if v.is_floating_point() and v.numel() > 1 and bool((v == v.flatten()[0]).all())]
    if constant:
        raise AssertionError(f"tensors left at a constant init value: {constant[:5]}")


def save_mmpose_checkpoint(model: nn.Module, cfg, path: str, seed: int) -> None:
    """The layout of mmengine Runner.save_checkpoint (runner.py: meta + state_dict), minus the
    optimizer/message_hub that tools/misc/publish_model.py strips from released weights."""
    import mmengine
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

    meta = dict(epoch=270, iter=270 * 1000, cfg=cfg.pretty_text, seed=seed,
                experiment_name="dwpose_edge_conformance", time=time.strftime("%Y%m%d_%H%M%S"),
                mmengine_version=mmengine.__version__, dataset_meta=model.dataset_meta)
    save_checkpoint({"meta": meta, "state_dict": weights_to_cpu(model.state_dict())}, path)


@torch.no_grad()
def logits(model: nn.Module, inputs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """backbone -> head.forward, the tensor mode of TopdownPoseEstimator."""
    sx, sy = model(inputs, None, mode="tensor")
    return sx.numpy(), sy.numpy()


@torch.no_grad()
def flip_merged_logits(model: nn.Module, inputs: torch.Tensor, flip_indices) -> tuple[np.ndarray, np.ndarray]:
    """What RTMCCHead.predict averages under flip_test (before decoding), for diagnostics."""
    from mmpose.models.utils.tta import flip_vectors

    sx, sy = model(inputs, None, mode="tensor")
    fx, fy = model(inputs.flip(-1), None, mode="tensor")
    fx, fy = flip_vectors(fx, fy, flip_indices=flip_indices)
    return ((sx + fx) * 0.5).numpy(), ((sy + fy) * 0.5).numpy()


def preprocess(cfg, model_or_cfg_preprocessor, image_path: str, boxes: np.ndarray):
    """mmpose's own test pipeline (LoadImage, GetBBoxCenterScale, TopdownAffine, PackPoseInputs)
    and the model's PoseDataPreprocessor, as inference_topdown runs them."""
    from mmengine.dataset import Compose, pseudo_collate

    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    items = []
    for box in boxes:
        items.append(pipeline(dict(img_path=image_path, bbox=box[None], bbox_score=np.ones(1, np.float32))))
    batch = pseudo_collate(items)
    with torch.no_grad():
        data = model_or_cfg_preprocessor(batch, training=False)
    samples = data["data_samples"]
    centers = np.stack([s.metainfo["input_center"] for s in samples]).astype(np.float32)
    scales = np.stack([s.metainfo["input_scale"] for s in samples]).astype(np.float32)
    return data["inputs"].float(), centers, scales, items[0]["inputs"], samples


def run_topdown(model: nn.Module, image_path: str, boxes: np.ndarray, flip: bool):
    from mmpose.apis import inference_topdown

    model.test_cfg["flip_test"] = flip
    model.cfg.model.test_cfg["flip_test"] = flip
    results = inference_topdown(model, image_path, boxes, bbox_format="xyxy")
    kpts = np.concatenate([r.pred_instances.keypoints for r in results]).astype(np.float32)
    scores = np.concatenate([r.pred_instances.keypoint_scores for r in results]).astype(np.float32)
    return kpts, scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check-imports", action="store_true",
                    help="only install the stubs and import mmpose (make_venv.sh's smoke test)")
    ap.add_argument("--out")
    ap.add_argument("--image")
    ap.add_argument("--boxes", help="JSON list of [x1,y1,x2,y2] in pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--logit-variants", default="dwpose-t,dwpose-s")
    ap.add_argument("--topdown-variants", default="dwpose-t,dwpose-s")
    args = ap.parse_args()
    if args.check_imports:
        install_stubs()
        import mmpose.apis  # noqa: F401
        import mmpose.codecs  # noqa: F401
        import mmpose.models  # noqa: F401
        print("mmpose imports ok")
        return
    if not (args.out and args.image and args.boxes):
        ap.error("--out, --image and --boxes are required")
    t0 = time.time()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    install_stubs()
    import cv2
    import mmcv
    import mmengine
    import mmpose
    import mmpose.codecs  # noqa: F401  (registers SimCCLabel)
    import mmpose.models  # noqa: F401  (registers CSPNeXt, RTMCCHead, ...)

    os.makedirs(args.out, exist_ok=True)
    boxes = np.asarray(json.loads(args.boxes), dtype=np.float32).reshape(-1, 4)
    arrays: dict[str, np.ndarray] = {"boxes": boxes}

    # 1. state-dict layout of all five variants (default init, no weights needed)
    keys = {}
    for variant in VARIANTS:
        model = build(variant)
        keys[variant] = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    with open(os.path.join(args.out, "keys.json"), "w") as f:
        json.dump(keys, f)

    rng = np.random.default_rng(args.seed)

    # 2. crops: mmpose's pipeline + data_preprocessor, for both input sizes
    from mmpose.registry import MODELS

    samples_by_size = {}
    for variant in ("dwpose-t", "dwpose-l-384"):
        cfg = load_config(variant)
        w, h = cfg.codec["input_size"]
        preproc = MODELS.build(cfg.model.data_preprocessor)
        crops, centers, scales, raw, samples = preprocess(cfg, preproc, args.image, boxes)
        samples_by_size[(w, h)] = samples
        tag = f"{w}x{h}"
        arrays[f"crops/{tag}"] = crops.numpy()
        arrays[f"centers/{tag}"] = centers
        arrays[f"scales/{tag}"] = scales
        arrays[f"crop0_bgr_uint8/{tag}"] = raw.numpy()  # TopdownAffine output before normalizing
    arrays["image_bgr"] = mmcv.imread(args.image)  # what LoadImage decoded (mmcv -> cv2.imdecode)

    # 3. seeded random weights -> mmpose checkpoint -> reload through init_model (mmengine's loader)
    wanted = sorted(set(args.logit_variants.split(",")) | set(args.topdown_variants.split(",")) - {""},
                    key=list(VARIANTS).index)
    models = {}
    for i, variant in enumerate(wanted):
        torch.manual_seed(args.seed + i)
        model = build(variant)
        w, h = model.cfg.codec["input_size"]
        noise = torch.from_numpy(rng.standard_normal((4, 3, h, w)).astype(np.float32))
        randomize_(model, args.seed + 1000 + i, torch.cat([noise, torch.from_numpy(arrays[f"crops/{w}x{h}"])]))
        ckpt = os.path.join(args.out, f"{variant}.pth")
        save_mmpose_checkpoint(model, model.cfg, ckpt, args.seed)
        reloaded = build(variant, checkpoint=ckpt)
        for (k, a), b in zip(model.state_dict().items(), reloaded.state_dict().values()):
            assert torch.equal(a, b), f"mmengine reload changed {k}"
        models[variant] = reloaded

    # 4. logits on seeded random N(0,1) inputs (shaped like normalized crops)
    for variant in args.logit_variants.split(","):
        if not variant:
            continue
        model = models[variant]
        w, h = model.cfg.codec["input_size"]
        x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
        arrays[f"logits_input/{variant}"] = x
        arrays[f"logits_x/{variant}"], arrays[f"logits_y/{variant}"] = logits(model, torch.from_numpy(x))

    # 5. inference_topdown, without and with flip test (official AP uses flip)
    flip_indices = None
    for variant in args.topdown_variants.split(","):
        if not variant:
            continue
        model = models[variant]
        flip_indices = model.dataset_meta["flip_indices"]
        for flip in (False, True):
            tag = f"{variant}/{'flip' if flip else 'noflip'}"
            arrays[f"topdown_kpts/{tag}"], arrays[f"topdown_scores/{tag}"] = run_topdown(
                model, args.image, boxes, flip)
        # diagnostics: the logits inference_topdown decoded (crops of this model's input size)
        w, h = model.cfg.codec["input_size"]
        crops = torch.from_numpy(arrays[f"crops/{w}x{h}"])
        arrays[f"topdown_logits_x/{variant}/noflip"], arrays[f"topdown_logits_y/{variant}/noflip"] = \
            logits(model, crops)
        arrays[f"topdown_logits_x/{variant}/flip"], arrays[f"topdown_logits_y/{variant}/flip"] = \
            flip_merged_logits(model, crops, flip_indices)

    # 6. SimCC decoding on crafted logits (score <= 0 rows, exact ties, a zero max), through
    #    RTMCCHead.decode (SimCCLabel.decode) and TopdownPoseEstimator.add_pred_to_datasample
    model = models[wanted[0]]
    w, h = model.cfg.codec["input_size"]
    n = len(boxes)
    sx = rng.standard_normal((n, 133, 2 * w)).astype(np.float32)
    sy = rng.standard_normal((n, 133, 2 * h)).astype(np.float32)
    sx[:, 0:10] = -np.abs(sx[:, 0:10]) - 0.01         # max_x < 0  -> score < 0 -> location -1
    sy[:, 10:20] = -np.abs(sy[:, 10:20]) - 0.01       # max_y < 0 only
    sx[:, 20:30] = -np.abs(sx[:, 20:30]); sx[:, 20:30, 7] = 0.0   # max exactly 0 -> also -1
    top = sx[:, 30:60].max(-1)
    sx[:, 30:60, 3], sx[:, 30:60, 300] = top + 1, top + 1       # exact tie: first index wins
    top = sy[:, 60:90].max(-1)
    sy[:, 60:90, 400], sy[:, 60:90, 5] = top + 1, top + 1
    preds = model.head.decode((torch.from_numpy(sx), torch.from_numpy(sy)))
    samples = [s.clone() for s in samples_by_size[(w, h)]]
    results = model.add_pred_to_datasample(preds, None, samples)
    arrays["decode_simcc_x"], arrays["decode_simcc_y"] = sx, sy
    arrays["decode_kpts"] = np.concatenate([r.pred_instances.keypoints for r in results]).astype(np.float32)
    arrays["decode_scores"] = np.concatenate([r.pred_instances.keypoint_scores for r in results]).astype(np.float32)
    arrays["decode_input_size"] = np.array([w, h])

    # 7. coco_wholebody flip indices from the dataset metainfo mmpose attaches to the model
    if flip_indices is None:
        flip_indices = build("dwpose-t").dataset_meta["flip_indices"]
    arrays["flip_indices"] = np.asarray(flip_indices, dtype=np.int64)

    np.savez(os.path.join(args.out, "dump.npz"), **arrays)
    info = dict(mmpose=mmpose.__version__, mmengine=mmengine.__version__, mmcv=mmcv.__version__,
                torch=torch.__version__, numpy=np.__version__, opencv=cv2.__version__,
                python=sys.version.split()[0], seed=args.seed, variants=wanted,
                configs={v: os.path.relpath(config_path(v), os.path.dirname(mmpose.__file__)) for v in VARIANTS},
                seconds=round(time.time() - t0, 1))
    with open(os.path.join(args.out, "info.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
