"""WholeBodyDataset on a tiny generated COCO-WholeBody set: targets, flips, weights, determinism."""
from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np
import pytest
import torch

from dwpose_edge.specs import FLIP_INDICES
from dwpose_edge.postprocess import decode_simcc
from dwpose_edge.preprocess import boxes_to_center_scale, crop_boxes, warp_matrix
from dwpose_edge.train.data import (WORKER_CONTEXT, AugConfig, WholeBodyDataset, encode_simcc, get_warp_matrix,
                                    load_wholebody_instances)
from mmpose_venv import mmpose_python  # noqa: F401 (fixture)

INPUT = (192, 256)
SIGMA = (4.9, 5.66)
# dots drawn on the image at these keypoints (BGR), to check pixels and labels move together
DOTS = {0: (255, 0, 0), 9: (0, 0, 255), 10: (0, 255, 0), 16: (255, 255, 255)}


def _person(rng, box_xywh, hide_left_hand=False):
    x, y, w, h = box_xywh
    kp = np.zeros((133, 3), np.float64)
    kp[:, 0] = rng.uniform(x + 0.1 * w, x + 0.9 * w, 133)
    kp[:, 1] = rng.uniform(y + 0.1 * h, y + 0.9 * h, 133)
    fixed = {0: (0.5, 0.1), 9: (0.15, 0.5), 10: (0.85, 0.5), 16: (0.6, 0.92)}
    for i, (fx, fy) in fixed.items():
        kp[i, :2] = (x + fx * w, y + fy * h)
    kp[:17, 2] = 2
    kp[3:5, 2] = 0  # ears not labelled
    kp[3:5, :2] = 0
    kp[17:23, 2] = 2
    kp[23:91, 2] = 1
    kp[91:133, 2] = 0.7  # hands: a confidence in the released files
    if hide_left_hand:
        kp[91:112] = 0
    kp = np.round(kp, 2)
    ann = {"bbox": [float(v) for v in box_xywh], "iscrowd": 0, "category_id": 1, "area": float(w * h),
           "num_keypoints": int((kp[:17, 2] > 0).sum())}
    cuts = {"keypoints": (0, 17), "foot_kpts": (17, 23), "face_kpts": (23, 91),
            "lefthand_kpts": (91, 112), "righthand_kpts": (112, 133)}
    for field, (a, b) in cuts.items():
        ann[field] = kp[a:b].reshape(-1).tolist()
    for part in ("face", "lefthand", "righthand", "foot"):
        ann[f"{part}_valid"] = True
    ann["lefthand_valid"] = not hide_left_hand
    return ann, kp


def make_tiny_wholebody(root, seed=0):
    """3 images, 4 usable persons + 1 crowd + 1 without body keypoints; returns (ann_file, image_dir, kpts)."""
    rng = np.random.default_rng(seed)
    img_dir = root / "images"
    img_dir.mkdir()
    images, anns, truth = [], [], {}
    boxes = {1: [(40, 30, 120, 180)], 2: [(20, 20, 100, 150), (170, 60, 110, 170)], 3: [(60, 40, 140, 190)]}
    ann_id = 1
    for image_id, bxs in boxes.items():
        img = np.full((256, 320, 3), 40, np.uint8)
        cv2.rectangle(img, (0, 0), (319, 255), (90, 60, 30), 3)
        for j, box in enumerate(bxs):
            ann, kp = _person(rng, box, hide_left_hand=(image_id == 2 and j == 0))
            for i, color in DOTS.items():
                cv2.circle(img, (int(round(kp[i, 0])), int(round(kp[i, 1]))), 6, color, -1)
            ann.update(id=ann_id, image_id=image_id)
            anns.append(ann)
            truth[ann_id] = kp
            ann_id += 1
        name = f"{image_id:06d}.png"
        cv2.imwrite(str(img_dir / name), img)
        images.append({"id": image_id, "file_name": name, "width": 320, "height": 256})
    crowd, _ = _person(rng, (10, 10, 50, 50))
    crowd.update(id=100, image_id=1, iscrowd=1)
    nobody, _ = _person(rng, (10, 10, 50, 50))
    nobody.update(id=101, image_id=3, num_keypoints=0)
    nobody["keypoints"] = [0.0] * 51
    anns += [crowd, nobody]
    data = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}
    ann_file = root / "wholebody.json"
    ann_file.write_text(json.dumps(data))
    return ann_file, img_dir, truth


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_wholebody(tmp_path_factory.mktemp("wb"))


def _peaks(sample):
    tx, ty = sample["target_x"].numpy(), sample["target_y"].numpy()
    return np.stack([tx.argmax(1), ty.argmax(1)], 1) / 2.0


def test_instances_filter_and_visibility(tiny):
    ann_file, img_dir, truth = tiny
    inst = load_wholebody_instances(ann_file, img_dir)
    assert [i["ann_id"] for i in inst] == [1, 2, 3, 4]  # crowd and num_keypoints == 0 dropped
    vis = inst[0]["visible"]
    assert vis.shape == (133,) and set(np.unique(vis)) == {0.0, 1.0}
    assert vis[3] == vis[4] == 0 and vis[91:].all()  # hands labelled with confidence 0.7 -> 1
    assert not inst[1]["visible"][91:112].any()
    np.testing.assert_allclose(inst[0]["keypoints"], truth[1][:, :2], atol=1e-4)
    np.testing.assert_allclose(inst[0]["bbox_xyxy"], [40, 30, 160, 210])


def test_encode_simcc_peaks_and_weights():
    kp = np.array([[10.2, 20.7], [100.25, 3.0], [0.0, 0.0], [400.0, 50.0], [-5.0, 260.0]], np.float32)
    vis = np.array([1, 1, 0, 1, 1], np.float32)
    tx, ty, w = encode_simcc(kp, vis, INPUT, SIGMA)
    assert tx.shape == (5, 384) and ty.shape == (5, 512) and tx.dtype == np.float32
    assert tx[0].argmax() == 20 and ty[0].argmax() == 41 and tx[0].max() == 1.0
    assert tx[1].argmax() == 200  # round(200.5) -> 200, half to even as np.around
    np.testing.assert_allclose(tx[0, 25], np.exp(-25 / (2 * 4.9 ** 2)), rtol=1e-6)
    np.testing.assert_array_equal(w, [1, 1, 0, 0, 1])  # invisible -> 0; 800 bins away -> 0
    assert not tx[2].any() and not tx[3].any()
    # partly inside (within 3 sigma of the border) keeps weight 1 and a clipped Gaussian
    assert w[4] == 1 and tx[4, 0] > 0


def test_warp_matrix_matches_inference_crop():
    center = np.array([123.4, 88.8], np.float32)
    scale = np.array([150.0, 200.0], np.float32)
    np.testing.assert_array_equal(get_warp_matrix(center, scale, 0.0, INPUT), warp_matrix(center, scale, INPUT))
    m = get_warp_matrix(center, scale, 90.0, INPUT)
    np.testing.assert_allclose(m @ [*center, 1], [96, 128], atol=1e-3)
    # rotation by 90 degrees: the image x axis becomes the crop y axis
    d = m[:, :2] @ [1.0, 0.0]
    assert abs(d[0]) < 1e-6 and abs(d[1]) == pytest.approx(192 / 150, rel=1e-5)


def test_val_sample_matches_inference_and_decodes_back(tiny):
    ann_file, img_dir, truth = tiny
    ds = WholeBodyDataset(ann_file, img_dir, INPUT, SIGMA, train=False)
    for idx in range(len(ds)):
        s = ds[idx]
        inst = ds.instances[idx]
        image = cv2.imread(inst["image_path"])
        crops, centers, scales = crop_boxes(image, inst["bbox_xyxy"][None], INPUT)
        torch.testing.assert_close(s["img"], torch.from_numpy(crops[0]), rtol=0, atol=0)
        np.testing.assert_array_equal(s["center"].numpy(), centers[0])
        np.testing.assert_array_equal(s["scale"].numpy(), scales[0])
        w = s["target_weight"].numpy()
        np.testing.assert_array_equal(w, inst["visible"])
        # peaks sit at the crop keypoints (to the 0.5 px bin) ...
        np.testing.assert_allclose(_peaks(s)[w > 0], s["keypoints"].numpy()[w > 0], atol=0.25 + 1e-4)
        # ... and the inference decoder maps them back to the annotation
        kx, _ = decode_simcc(s["target_x"][None].numpy(), s["target_y"][None].numpy(), centers, scales, INPUT)
        px = scales[0, 0] / INPUT[0]
        err = np.abs(kx[0] - truth[inst["ann_id"]][:, :2])[w > 0]
        assert err.max() <= 0.25 * px + 1e-3


def _dot_colors(sample, ids):
    img = sample["img"].numpy().transpose(1, 2, 0) * [58.395, 57.12, 57.375] + [123.675, 116.28, 103.53]
    out = {}
    for i in ids:
        x, y = np.round(sample["keypoints"][i].numpy()).astype(int)
        out[i] = img[y, x][::-1]  # RGB -> BGR
    return out


def test_rotated_scaled_sample_targets_follow_keypoints(tiny):
    ann_file, img_dir, truth = tiny
    aug = AugConfig.none().replace(rotate_prob=1.0, scale_prob=1.0, shift_prob=1.0, scale_factor=(1.0, 1.4))
    ds = WholeBodyDataset(ann_file, img_dir, INPUT, SIGMA, train=True, aug=aug, seed=3)
    rotations = []
    for idx in range(len(ds)):
        s = ds[idx]
        rotations.append(s["rotation"])
        m = get_warp_matrix(s["center"].numpy(), s["scale"].numpy(), s["rotation"], INPUT)
        kp = truth[ds.instances[idx]["ann_id"]][:, :2]
        want = kp @ m[:, :2].T + m[:, 2]
        np.testing.assert_allclose(s["keypoints"].numpy(), want, atol=1e-3)
        w = s["target_weight"].numpy()
        inside = (w > 0) & (want[:, 0] >= 0) & (want[:, 0] < 192) & (want[:, 1] >= 0) & (want[:, 1] < 256)
        np.testing.assert_allclose(_peaks(s)[inside], want[inside], atol=0.25 + 1e-3)
        for i, bgr in _dot_colors(s, [i for i in DOTS if inside[i]]).items():
            np.testing.assert_allclose(bgr, DOTS[i], atol=40)
    assert all(-90 <= r <= 90 for r in rotations) and any(abs(r) > 1 for r in rotations)


def test_flip_swaps_left_and_right(tiny):
    ann_file, img_dir, truth = tiny
    plain = WholeBodyDataset(ann_file, img_dir, INPUT, SIGMA, train=True, aug=AugConfig.none(), seed=0)
    flip = WholeBodyDataset(ann_file, img_dir, INPUT, SIGMA, train=True,
                            aug=AugConfig.none().replace(flip_prob=1.0), seed=0)
    idx = 1  # the person whose left hand is not labelled
    a, b = plain[idx], flip[idx]
    assert b["flipped"] and not a["flipped"]
    # keypoint j of the flipped crop is the mirror (x -> W - x) of keypoint flip(j) of the plain crop
    ka, kb = a["keypoints"].numpy(), b["keypoints"].numpy()
    np.testing.assert_allclose(kb[:, 0], INPUT[0] - ka[FLIP_INDICES, 0], atol=1e-3)
    np.testing.assert_allclose(kb[:, 1], ka[FLIP_INDICES, 1], atol=1e-3)
    wa, wb = a["target_weight"].numpy(), b["target_weight"].numpy()
    assert not wa[91:112].any() and wa[112:].all()
    assert wb[91:112].all() and not wb[112:].any()  # the labelled right hand is now the left hand
    np.testing.assert_array_equal(wb, wa[FLIP_INDICES])
    # the image moved with the labels: left-wrist label (9) sits on the right wrist's green dot
    colors = _dot_colors(b, [9, 10])
    np.testing.assert_allclose(colors[9], DOTS[10], atol=40)
    np.testing.assert_allclose(colors[10], DOTS[9], atol=40)
    # and the crop is the mirror image of the plain crop, shifted by one pixel (x -> W - x). OpenCV 4's
    # fixed-point warpAffine rounds mirrored coordinates slightly differently: 0.09% of the values (on
    # sharp dot edges) move by up to 7 levels (0.12 normalised); a wrong flip moves most of them.
    diff = (b["img"][:, :, 1:] - a["img"].flip(-1)[:, :, :-1]).abs()
    assert (diff > 1e-4).float().mean() < 0.005 and diff.max() < 0.25, ((diff > 1e-4).float().mean(), diff.max())


def test_invisible_keypoints_have_zero_weight_and_label(tiny):
    ann_file, img_dir, _ = tiny
    ds = WholeBodyDataset(ann_file, img_dir, INPUT, SIGMA, train=True, seed=5)
    for idx in range(len(ds)):
        s = ds[idx]
        hidden = s["visible"].numpy() == 0
        assert hidden.any()
        assert (s["target_weight"].numpy()[hidden] == 0).all()
        assert not s["target_x"].numpy()[hidden].any() and not s["target_y"].numpy()[hidden].any()


def test_half_body_box(tiny):
    ann_file, img_dir, truth = tiny
    ds = WholeBodyDataset(ann_file, img_dir, INPUT, SIGMA, train=True,
                          aug=AugConfig.none().replace(half_body_prob=1.0), seed=1)
    for idx in range(len(ds)):
        s = ds[idx]
        kp, vis = truth[ds.instances[idx]["ann_id"]][:, :2], ds.instances[idx]["visible"]
        options = []
        for ids in (range(0, 11), range(11, 23)):
            sel = kp[[i for i in ids if vis[i] > 0]]
            size = (sel.max(0) - sel.min(0)) * 1.5
            options.append((sel.mean(0), boxes_to_center_scale(np.r_[[0, 0], size][None], INPUT, 1.0)[1][0]))
        assert any(np.allclose(s["center"].numpy(), c, atol=1e-3) and np.allclose(s["scale"].numpy(), sc, rtol=1e-5)
                   for c, sc in options)


def _load_batches(ann_file, img_dir):
    ds = WholeBodyDataset(ann_file, img_dir, INPUT, SIGMA, train=True, seed=7)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, shuffle=False,
                                         multiprocessing_context=WORKER_CONTEXT)
    return [{k: v for k, v in b.items() if isinstance(v, torch.Tensor)} for b in loader]


def test_full_pipeline_deterministic_and_batches(tiny):
    ann_file, img_dir, _ = tiny
    ds = WholeBodyDataset(ann_file, img_dir, INPUT, SIGMA, train=True, seed=7)
    a, b = ds[2], ds[2]
    for k in ("img", "target_x", "target_y", "target_weight"):
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    ds.set_epoch(1)
    c = ds[2]
    assert not torch.equal(a["img"], c["img"])
    ds.set_epoch(0)
    # Worker processes run inside a child process: in one long pytest process that had used OpenVINO
    # before, a later subprocess call crashed the parent (SIGSEGV in close()) after a multi-worker loader.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        batches = pool.submit(_load_batches, ann_file, img_dir).result(timeout=300)
    assert len(batches) == 2
    batch = batches[0]
    assert batch["img"].shape == (2, 3, 256, 192) and batch["img"].dtype == torch.float32
    assert batch["target_x"].shape == (2, 133, 384) and batch["target_y"].shape == (2, 133, 512)
    assert batch["target_weight"].shape == (2, 133)
    torch.testing.assert_close(batches[1]["img"][0], a["img"], rtol=0, atol=0)  # workers reproduce item 2
    assert torch.isfinite(batch["img"]).all()
    raw = WholeBodyDataset(ann_file, img_dir, INPUT, SIGMA, train=False, normalize=False)[0]["img"]
    assert raw.dtype == torch.uint8 and raw.shape == (3, 256, 192)
    from dwpose_edge.train.data import normalize_batch
    torch.testing.assert_close(normalize_batch(raw[None])[0],
                               WholeBodyDataset(ann_file, img_dir, INPUT, SIGMA, train=False)[0]["img"])


# ----------------------------------------------------------------------------- real mmpose 1.3.2

MMPOSE_SIDE = r'''
import json, os, sys
import numpy as np, torch
sys.path.insert(0, sys.argv[2])
from mmpose_dump import install_stubs
install_stubs()
import mmpose
from mmpose.codecs import SimCCLabel
from mmpose.datasets.datasets.utils import parse_pose_metainfo
from mmpose.datasets.transforms import GenerateTarget, GetBBoxCenterScale, LoadImage, RandomFlip, TopdownAffine
from mmpose.models.losses import KLDiscretLoss
from mmpose.models.losses.fea_dis_loss import FeaLoss
from mmpose.models.losses.logit_dis_loss import KDLoss
from mmpose.structures.bbox import get_warp_matrix
d = sys.argv[1]
inp = dict(np.load(os.path.join(d, "in.npz")))
t = torch.from_numpy
out = {}
p, s, g, w = (t(inp["px"]), t(inp["py"])), (t(inp["sx"]), t(inp["sy"])), (t(inp["tx"]), t(inp["ty"])), t(inp["w"])
out["kld"] = KLDiscretLoss(beta=10., label_softmax=True, use_target_weight=True)(p, g, w).numpy()
out["kd"] = KDLoss("loss_logit", True, weight=0.1)(p, s, 10., w).numpy()
fea = FeaLoss("loss_fea", True, 4, 6, alpha_fea=0.00007)
with torch.no_grad():
    fea.align.weight.copy_(t(inp["cw"])); fea.align.bias.copy_(t(inp["cb"]))
out["fea"] = fea(t(inp["fs"]), t(inp["ft"])).detach().numpy()
codec = dict(type="SimCCLabel", input_size=(192, 256), sigma=(4.9, 5.66), simcc_split_ratio=2.0, normalize=False,
             use_dark=False)
enc = SimCCLabel(**{k: v for k, v in codec.items() if k != "type"}).encode(inp["kp"][None], inp["vis"][None])
out["enc_x"], out["enc_y"], out["enc_w"] = (enc[k][0] for k in ("keypoint_x_labels", "keypoint_y_labels",
                                                                   "keypoint_weights"))
out["warps"] = np.stack([get_warp_matrix(c, s_, r, (192, 256)) for c, s_, r in zip(inp["wc"], inp["ws"], inp["wr"])])
cfg = os.path.join(os.path.dirname(mmpose.__file__), ".mim/configs/_base_/datasets/coco_wholebody.py")
meta = parse_pose_metainfo(dict(from_file=cfg))
for key in ("flip_indices", "upper_body_ids", "lower_body_ids", "sigmas"):
    out[key] = np.asarray(meta[key])
res = {k: [] for k in ("img", "transformed_keypoints", "keypoint_x_labels", "keypoint_y_labels", "keypoint_weights")}
for c in json.load(open(os.path.join(d, "cases.json"))):
    r = dict(img_path=c["img_path"], bbox=np.array([c["bbox"]], np.float32),
             keypoints=np.array([c["keypoints"]], np.float32), keypoints_visible=np.array([c["visible"]], np.float32),
             flip_indices=meta["flip_indices"])
    r = GetBBoxCenterScale()(LoadImage()(r))
    if c["flip"]:
        r = RandomFlip(prob=1.0)(r)
    # the random box (half body / shift / scale / rotation) our pipeline drew, injected
    r["bbox_center"] = np.array([c["center"]], np.float32)
    r["bbox_scale"] = np.array([c["scale"]], np.float32)
    r["bbox_rotation"] = np.array([c["rotation"]], np.float32)
    r = GenerateTarget(encoder=codec)(TopdownAffine(input_size=(192, 256))(r))
    for k in res:
        res[k].append(r[k] if k == "img" else r[k][0])
out.update({k: np.stack(v) for k, v in res.items()})
np.savez(os.path.join(d, "out.npz"), **out)
'''


@pytest.mark.conformance
def test_matches_real_mmpose(tiny, tmp_path, mmpose_python):
    """Codec, warp, flip + affine + targets and the three losses, bit for bit against mmpose 1.3.2."""
    import subprocess
    from pathlib import Path

    from dwpose_edge.train.data import LOWER_BODY_IDS, UPPER_BODY_IDS
    from dwpose_edge.evaluation.metric import WHOLEBODY_SIGMAS
    from dwpose_edge.train.losses import FeatureLoss, KLDiscretLoss, LogitLoss

    python = mmpose_python
    g = np.random.default_rng(0)
    n, k = 3, 133
    f32 = np.float32
    inp = dict(px=g.normal(size=(n, k, 384)).astype(f32), py=g.normal(size=(n, k, 512)).astype(f32),
               sx=g.normal(size=(n, k, 384)).astype(f32), sy=g.normal(size=(n, k, 512)).astype(f32),
               tx=g.random((n, k, 384)).astype(f32), ty=g.random((n, k, 512)).astype(f32),
               w=(g.random((n, k)) > 0.3).astype(f32),
               cw=g.normal(size=(6, 4, 1, 1)).astype(f32), cb=g.normal(size=6).astype(f32),
               fs=g.normal(size=(n, 4, 8, 6)).astype(f32), ft=g.normal(size=(n, 6, 8, 6)).astype(f32),
               kp=np.c_[g.uniform(-30, 220, k), g.uniform(-30, 290, k)].astype(f32),
               vis=(g.random(k) > 0.2).astype(f32),
               wc=g.uniform(50, 300, (6, 2)).astype(f32), ws=g.uniform(50, 300, (6, 2)).astype(f32),
               wr=np.array([0, 30, -45, 90, -87.3, 12.5], f32))
    inp["kp"][:5] = [[100.25, 3.75], [0.0, 0.0], [-20, 5], [230, 100], [191.75, 255.75]]
    np.savez(tmp_path / "in.npz", **inp)
    ann_file, img_dir, truth = tiny
    cases, ours = [], []
    for flip in (False, True):
        for rand_box in (False, True):
            aug = AugConfig.none().replace(flip_prob=float(flip), half_body_prob=0.5 * rand_box,
                                           rotate_prob=float(rand_box), scale_prob=float(rand_box),
                                           shift_prob=float(rand_box))
            ds = WholeBodyDataset(ann_file, img_dir, INPUT, SIGMA, train=True, aug=aug, seed=3, normalize=False)
            for i in range(len(ds)):
                s, inst = ds[i], ds.instances[i]
                cases.append(dict(img_path=inst["image_path"], bbox=inst["bbox_xyxy"].tolist(),
                                  keypoints=truth[inst["ann_id"]][:, :2].tolist(), visible=inst["visible"].tolist(),
                                  flip=flip, center=s["center"].tolist(), scale=s["scale"].tolist(),
                                  rotation=s["rotation"]))
                ours.append(s)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    ref_dir = Path(__file__).parent / "mmpose_ref"
    run = subprocess.run([str(python), "-c", MMPOSE_SIDE, str(tmp_path), str(ref_dir)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    ref = np.load(tmp_path / "out.npz")

    t = torch.from_numpy
    p, s_, gt, w = (t(inp["px"]), t(inp["py"])), (t(inp["sx"]), t(inp["sy"])), (t(inp["tx"]), t(inp["ty"])), t(inp["w"])
    assert KLDiscretLoss()(p, gt, w).item() == float(ref["kld"])
    assert LogitLoss(10.0, 133, 0.1)(p, s_).item() == float(ref["kd"])
    fea = FeatureLoss(4, 6)
    with torch.no_grad():
        fea.align.weight.copy_(t(inp["cw"]))
        fea.align.bias.copy_(t(inp["cb"]))
    assert fea(t(inp["fs"]), t(inp["ft"])).item() == pytest.approx(float(ref["fea"]), rel=1e-6)
    for mine, theirs in zip(encode_simcc(inp["kp"], inp["vis"], INPUT, SIGMA), ("enc_x", "enc_y", "enc_w")):
        np.testing.assert_array_equal(mine, ref[theirs])
    warps = [get_warp_matrix(c, s, r, INPUT) for c, s, r in zip(inp["wc"], inp["ws"], inp["wr"])]
    np.testing.assert_array_equal(np.stack(warps), ref["warps"])
    np.testing.assert_array_equal(ref["flip_indices"], FLIP_INDICES)
    np.testing.assert_array_equal(ref["upper_body_ids"], UPPER_BODY_IDS)
    np.testing.assert_array_equal(ref["lower_body_ids"], LOWER_BODY_IDS)
    np.testing.assert_allclose(ref["sigmas"], WHOLEBODY_SIGMAS, rtol=0, atol=1e-7)
    for j, s in enumerate(ours):
        np.testing.assert_array_equal(s["img"].numpy().transpose(1, 2, 0)[..., ::-1], ref["img"][j])
        np.testing.assert_array_equal(s["keypoints"].numpy(), ref["transformed_keypoints"][j])
        np.testing.assert_array_equal(s["target_x"].numpy(), ref["keypoint_x_labels"][j])
        np.testing.assert_array_equal(s["target_y"].numpy(), ref["keypoint_y_labels"][j])
        np.testing.assert_array_equal(s["target_weight"].numpy(), ref["keypoint_weights"][j])
