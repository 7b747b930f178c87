"""Bad input, table-driven: every case goes through a public entry point (Estimator, the CLI, the exporters)
and either raises the documented `dwpose_edge.errors` type with a message matching `match`, or `check`s a
documented behaviour on the real result. docs/errors.md lists the same table.

Model files come from the test model exported once per machine (tests/shared_models.py); damaged copies
are made in tmp_path; `E()` is the plain `weights="random"` dwpose-t on torch. A model_dir copy can be
"rehashed" (manifest hashes updated to the damaged file) so that the runtime's own file checks are
exercised, not only the manifest's sha256.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from dwpose_edge import Estimator
from dwpose_edge.cli import main as cli_main
from dwpose_edge.data import DATA_DIR
from dwpose_edge.errors import (DwposeEdgeError, ExportError, InputError, ModelFileError, RuntimeUnavailableError,
                                WeightsError)
from dwpose_edge.hashing import sha256_file
from dwpose_edge.specs import NUM_KEYPOINTS
from dwpose_edge.preprocess import boxes_to_center_scale
from shared_models import installed, model_dir

SIZE = (192, 256)
ONNX_NAME = "dwpose-t_256x192_fp32.onnx"
needs_openvino = pytest.mark.skipif(not installed("openvino"), reason="openvino is not installed")
needs_ncnn = pytest.mark.skipif(not installed("ncnn"), reason="ncnn/pnnx are not installed")


# ------------------------------------------------------------------------------------------- shared objects


@functools.lru_cache(maxsize=None)
def torch_est() -> Estimator:
    return Estimator("dwpose-t", weights="random", threads=1)


@functools.lru_cache(maxsize=None)
def ort_est(batch_size: int = 16) -> Estimator:
    return Estimator("dwpose-t", runtime="onnxruntime", model_dir=model_dir("onnxruntime"), threads=1,
                     batch_size=batch_size)


@functools.lru_cache(maxsize=None)
def photo() -> np.ndarray:
    return cv2.imread(str(DATA_DIR / "grace_hopper.jpg"))


@functools.lru_cache(maxsize=None)
def state_dict_of(name: str) -> dict:
    torch.manual_seed(0)
    from dwpose_edge.models import build_model

    return build_model(name).state_dict()


@dataclass
class Ctx:
    """What a case may use: a fresh tmp folder, monkeypatch, and the session's tiny checkpoint."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    ckpt: Path
    capsys: Any

    def file(self, name: str, data: bytes) -> str:
        path = self.tmp / name
        path.write_bytes(data)
        return str(path)

    def torch_file(self, name: str, obj: Any) -> str:
        path = self.tmp / name
        torch.save(obj, path)
        return str(path)

    def damaged_dir(self, runtime: str, role: str, damage: Callable[[bytes], bytes], rehash: bool = True) -> Path:
        """A copy of the random export folder of `runtime` with file `role` damaged (and re-hashed in the manifest)."""
        src = model_dir(runtime)
        dst = self.tmp / f"{runtime}-{role}"
        dst.mkdir()
        doc = json.loads((src / "manifest.json").read_text())
        doc["artifacts"] = [a for a in doc["artifacts"] if a["runtime"] == runtime and a["precision"] == "fp32"]
        art = doc["artifacts"][0]
        for r, name in art["files"].items():
            shutil.copyfile(src / name, dst / name)
        target = dst / art["files"][role]
        target.write_bytes(damage(target.read_bytes()))
        if rehash:
            art["sha256"][role] = sha256_file(target)
        (dst / "manifest.json").write_text(json.dumps(doc))
        return dst

    def manifest_dir(self, edit: Callable[[dict], Any]) -> Path:
        """A copy of the onnxruntime export folder whose manifest.json `edit` changed (or replaced: str/bytes)."""
        src = model_dir("onnxruntime")
        dst = self.tmp / "edited"
        dst.mkdir()
        shutil.copyfile(src / ONNX_NAME, dst / ONNX_NAME)
        doc = json.loads((src / "manifest.json").read_text())
        new = edit(doc)
        if isinstance(new, bytes):
            (dst / "manifest.json").write_bytes(new)
        else:
            (dst / "manifest.json").write_text(new if isinstance(new, str) else json.dumps(doc))
        return dst

    def cli(self, *args: str) -> tuple[int, str]:
        """Run `dwpose-edge ...` in-process; (exit code, stderr). argparse errors give their SystemExit code."""
        self.capsys.readouterr()
        try:
            rc = cli_main([str(a) for a in args])
        except SystemExit as exc:
            rc = exc.code
        return rc, self.capsys.readouterr().err


def ort_cli_args() -> list[str]:
    return ["--runtime", "onnxruntime", "--model-dir", str(model_dir("onnxruntime")), "--threads", "1"]


# ------------------------------------------------------------------------------------------- inputs


def image(h: int, w: int, dtype=np.uint8, c: int | None = 3) -> np.ndarray:
    shape = (h, w) if c is None else (h, w, c)
    return np.random.default_rng(h * w).integers(0, 255, shape, dtype=np.uint8).astype(dtype, copy=False)


def nan_weights(ctx: Ctx) -> str:
    sd = dict(state_dict_of("dwpose-t"))
    sd["head.cls_x.weight"] = sd["head.cls_x.weight"].clone()
    sd["head.cls_x.weight"][0, 0] = float("nan")
    return ctx.torch_file("nan.pth", {"state_dict": sd})


def other_size_checkpoint(ctx: Ctx) -> str:
    return ctx.torch_file("dwpose-s.pth", {"meta": {}, "state_dict": state_dict_of("dwpose-s")})


class _Payload:
    """A pickle whose loading would run `touch <marker>`: it must be refused before anything runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def malicious_checkpoint(ctx: Ctx) -> str:
    ctx.marker = ctx.tmp / "pwned"
    return ctx.torch_file("evil.pth", {"meta": {"x": _Payload(ctx.marker)}, "state_dict": state_dict_of("dwpose-t")})


def onnx_edit(ctx: Ctx, name: str, edit: Callable) -> str:
    """A copy of the random ONNX export changed by `edit(proto)`."""
    import onnx

    proto = onnx.load(str(model_dir("onnxruntime") / ONNX_NAME))
    edit(proto)
    path = ctx.tmp / name
    onnx.save(proto, str(path))
    return str(path)


def _set_initializer(proto, name: str, value: float) -> None:
    from onnx import numpy_helper

    init = next(i for i in proto.graph.initializer if i.name == name)
    arr = np.full_like(numpy_helper.to_array(init), value)
    init.CopyFrom(numpy_helper.from_array(arr, name))


def _overflowing_weights(proto) -> None:
    """A finite weight large enough that the head's matmul overflows float32 to inf at run time."""
    _set_initializer(proto, next(i.name for i in proto.graph.initializer if "MatMul" in i.name
                                 and tuple(i.dims) == (256, 384)), 3e38)


def _nan_weight(proto) -> None:
    _set_initializer(proto, "head.final_layer.weight", float("nan"))


def _three_outputs(proto) -> None:
    import onnx

    first = proto.graph.node[0].output[0]  # an intermediate tensor exposed as a third output
    proto.graph.output.append(onnx.helper.make_tensor_value_info(first, onnx.TensorProto.FLOAT, None))
    proto.graph.output[-1].type.tensor_type.shape.SetInParent()


def unknown_operator_onnx(ctx: Ctx) -> str:
    """A structurally valid pose-shaped ONNX whose operator no runtime knows (the checker cannot tell)."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Foo", ["input"], [out], domain="evil.ops") for out in ("simcc_x", "simcc_y")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 256, 192])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 133, d])
                               for n, d in (("simcc_x", 384), ("simcc_y", 512))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("evil.ops", 1)])
    path = ctx.tmp / "foo.onnx"
    onnx.save(model, str(path))
    return str(path)


def truncated_video(ctx: Ctx) -> Path:
    """An MJPG AVI of 10 frames cut at 90 %: OpenCV's header says 10 frames, 7 decode."""
    path = ctx.tmp / "full.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    data = path.read_bytes()
    cut = ctx.tmp / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.9)])
    return cut


def folder_named(ctx: Ctx, name: str) -> str:
    (ctx.tmp / name).mkdir()
    return str(ctx.tmp / name)


def hide(ctx: Ctx, *modules: str) -> None:
    for name in modules:
        ctx.monkeypatch.setitem(sys.modules, name, None)  # as if the package were not installed


# ------------------------------------------------------------------------------------------- behaviours


def crop_window(boxes) -> tuple[np.ndarray, np.ndarray]:
    centers, scales = boxes_to_center_scale(np.asarray(boxes, np.float32).reshape(-1, 4), SIZE)
    return centers - scales / 2, centers + scales / 2


def assert_valid(result, n: int) -> None:
    """n persons, finite keypoints inside each box's padded crop window (or -1 where the score is <= 0)."""
    assert result.keypoints.shape == (n, NUM_KEYPOINTS, 2) and result.scores.shape == (n, NUM_KEYPOINTS)
    assert np.isfinite(result.keypoints).all() and np.isfinite(result.scores).all()
    lo, hi = crop_window(result.boxes)
    ok = result.scores > 0
    inside = (result.keypoints >= lo[:, None] - 1e-3) & (result.keypoints <= hi[:, None] + 1e-3)
    assert inside[ok].all()


def same_as(reference: Callable[[], Any], atol: float = 0.0) -> Callable[[Any, Ctx], None]:
    def check(result, ctx):
        ref = reference()
        np.testing.assert_allclose(result.keypoints, ref.keypoints, atol=atol)
        np.testing.assert_allclose(result.scores, ref.scores, atol=atol)
    return check


def check_large_image(result, ctx) -> None:
    """A box in an 8000x6000 image gives what the same box gives in the 600x500 region around it."""
    assert_valid(result, 2)
    region = big_image()[5000:5600, 7000:7500]
    ref = torch_est()(region, BIG_BOXES[1:] - [7000, 5000, 7000, 5000])
    np.testing.assert_allclose(result.keypoints[1], ref.keypoints[0] + [7000, 5000], atol=1e-2)
    np.testing.assert_allclose(result.scores[1], ref.scores[0], atol=1e-3)  # resampling rounds differently


big_image = functools.lru_cache(maxsize=1)(lambda: image(6000, 8000))
BIG_BOXES = np.array([[0, 0, 8000, 6000], [7100, 5050, 7400, 5550]], np.float32)
PHOTO_BOXES = np.array([[150, 40, 420, 600], [60, 100, 300, 500]], np.float32)


def many_boxes(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    xy = rng.uniform(0, 400, (n, 2))
    return np.hstack([xy, xy + rng.uniform(20, 200, (n, 2))]).astype(np.float32)


def thousand_boxes(ctx: Ctx):
    """1000 boxes: all estimated, with numpy memory bounded by batch_size crops, not by the box count."""
    boxes = many_boxes(1000)
    tracemalloc.start()
    try:
        result = ort_est(32)(photo(), boxes)
        ctx.peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return result


def check_thousand(result, ctx) -> None:
    assert_valid(result, 1000)
    # all crops in one array would take 1000 x (590 KB crop + 476 KB logits) > 1 GB; one batch of 32 ~ 100 MB
    assert ctx.peak_mb < 150, ctx.peak_mb
    single = ort_est(1)(photo(), result.boxes[[0, 999]])
    np.testing.assert_allclose(result.keypoints[[0, 999]], single.keypoints, atol=1e-2)


def check_zero_persons(result, ctx) -> None:
    assert len(result) == 0 and result.keypoints.shape == (0, NUM_KEYPOINTS, 2) and result.boxes.shape == (0, 4)


def check_subpixel_box(result, ctx) -> None:
    """A sub-pixel box is estimated (its crop is one blurred pixel): every keypoint is at the box centre."""
    assert_valid(result, 1)
    np.testing.assert_allclose(result.keypoints[0], np.broadcast_to([50.5, 50.5], (NUM_KEYPOINTS, 2)), atol=0.01)


def check_cli_ok_with_warning(outcome, ctx) -> None:
    rc, err, doc, caught = outcome
    assert rc == 0
    video = next(iter(doc["files"]))
    assert len(doc["files"][video]) == 7 and doc["frames"] == 7
    assert doc["incomplete_videos"][video] == {"decoded": 7, "expected": 10}
    assert any("only 7 of its 10 frames" in str(w.message) for w in caught)


def cli_truncated_video(ctx: Ctx):
    out = ctx.tmp / "res.json"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc, err = ctx.cli("predict", truncated_video(ctx), *ort_cli_args(), "--out", out)
    return rc, err, json.loads(out.read_text()), caught


def check_cli_creates_out_folder(outcome, ctx) -> None:
    rc, err = outcome
    assert rc == 0, err
    doc = json.loads((ctx.tmp / "new" / "sub" / "res.json").read_text())
    assert doc["frames"] == 1 and doc["persons"] == 1


def corrupt_cached_hf(ctx: Ctx) -> str:
    """A damaged cached copy of a pinned Hugging Face file (size recorded in the registry)."""
    cache = ctx.tmp / "cache"
    cache.mkdir()
    (cache / "dw-ss_ucoco.pth").write_bytes(b"x" * 1000)
    ctx.monkeypatch.setenv("DWPOSE_EDGE_CACHE", str(cache))
    return "dwpose-s-hf"


def check_payload_not_run(ctx: Ctx) -> None:
    assert not ctx.marker.exists(), "the pickle payload ran"


# ------------------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    """One bad input: `call(ctx)` raises `error` whose message matches `match`, or returns what `check` accepts.

    CLI cases set `exit_code`: `call` returns (exit code, stderr) and stderr must match `match`.
    `after` runs last in both cases (e.g. to assert that a refused payload never ran).
    """

    id: str
    call: Callable[[Ctx], Any]
    error: type[BaseException] | None = None
    match: str = ""
    check: Callable[[Any, Ctx], None] | None = None
    exit_code: int | None = None
    after: Callable[[Ctx], None] | None = None
    marks: tuple = ()


E = torch_est

CASES = [
    # ---- images through Estimator
    Case("image-float32", lambda c: E()(image(50, 40, np.float32)), InputError, r"uint8.*got float32.*\* 255"),
    Case("image-uint16", lambda c: E()(image(50, 40, np.uint16)), InputError, r"got uint16; 16-bit: convert"),
    Case("image-bool", lambda c: E()(image(50, 40, bool)), InputError, r"dtype must be uint8.*got bool"),
    Case("image-grayscale-2d", lambda c: E()(image(50, 40, c=None)), InputError, r"grayscale.*COLOR_GRAY2BGR"),
    Case("image-one-channel", lambda c: E()(image(50, 40, c=1)), InputError, r"\(50, 40, 1\).*one channel"),
    Case("image-bgra", lambda c: E()(image(50, 40, c=4)), InputError, r"COLOR_BGRA2BGR"),
    Case("image-batch-4d", lambda c: E()(np.zeros((2, 50, 40, 3), np.uint8)), InputError, r"once per image"),
    Case("image-empty", lambda c: E()(np.zeros((0, 40, 3), np.uint8)), InputError, r"image is empty.*skip"),
    Case("image-list", lambda c: E()([[[0, 0, 0]]]), InputError, r"numpy array.*got list"),
    Case("image-none", lambda c: E()(None), InputError, r"numpy array.*got NoneType"),
    Case("image-1x1", lambda c: E()(image(1, 1)), check=lambda r, c: assert_valid(r, 1)),
    Case("image-8000x6000", lambda c: E()(big_image(), BIG_BOXES), check=check_large_image),
    Case("image-noncontiguous", lambda c: E()(np.repeat(photo(), 2, axis=1)[:, ::2], PHOTO_BOXES),
         check=same_as(lambda: E()(photo(), PHOTO_BOXES))),
    Case("image-readonly", lambda c: E()(np.lib.stride_tricks.as_strided(photo(), writeable=False), PHOTO_BOXES),
         check=same_as(lambda: E()(photo(), PHOTO_BOXES))),
    Case("image-fortran-order", lambda c: E()(np.asfortranarray(photo()), PHOTO_BOXES),
         check=same_as(lambda: E()(photo(), PHOTO_BOXES))),
    # ---- boxes through Estimator
    Case("box-nan", lambda c: E()(photo(), [[0, 0, np.nan, 50], [0, 0, 9, 9]]), InputError, r"boxes \[0\].*NaN or inf"),
    Case("box-inf", lambda c: E()(photo(), [[0, 0, 9, 9], [0, 0, np.inf, 50]]), InputError, r"boxes \[1\].*NaN or inf"),
    Case("box-float32-overflow", lambda c: E()(photo(), np.array([[0, 0, 1e39, 50]])), InputError, r"NaN or inf"),
    Case("box-huge-coordinates", lambda c: E()(photo(), [[-1e30, -1e30, 1e30, 1e30]]), InputError,
         r"beyond \+-16777216 px.*clip boxes"),
    Case("box-inverted", lambda c: E()(photo(), [[100, 100, 50, 200]]), InputError, r"inverted.*not x,y,w,h"),
    Case("box-zero-area", lambda c: E()(photo(), [[100, 100, 100, 200]]), InputError, r"zero area"),
    Case("box-outside-image", lambda c: E()(photo(), [[600, 0, 700, 100]]), InputError,
         r"entirely outside the 512x600 image; drop it"),
    Case("box-subpixel", lambda c: E()(image(100, 100), [[50.5, 50.5, 50.501, 50.501]]), check=check_subpixel_box),
    Case("box-partly-outside", lambda c: E()(photo(), [[-100, -100, 150, 200]]), check=lambda r, c: assert_valid(r, 1)),
    Case("box-1d", lambda c: E()(photo(), [150, 40, 420, 600]),
         check=same_as(lambda: E()(photo(), PHOTO_BOXES[:1]))),
    Case("boxes-empty", lambda c: E()(photo(), np.zeros((0, 4))), check=check_zero_persons),
    Case("boxes-with-score-column", lambda c: E()(photo(), [[0, 0, 9, 9, 0.9]]), InputError, r"\(1, 5\).*score column"),
    Case("boxes-3d", lambda c: E()(photo(), np.zeros((1, 1, 4)) + 5), InputError, r"shape \(N,4\).*\(1, 1, 4\)"),
    Case("boxes-strings", lambda c: E()(photo(), [["a", "b", "c", "d"]]), InputError, r"numeric"),
    Case("boxes-object", lambda c: E()(photo(), object()), InputError, r"numeric"),
    Case("boxes-5000-one-bad", lambda c: E()(photo(), np.vstack([many_boxes(4999), [[0, 0, np.nan, 1]]])),
         InputError, r"boxes \[4999\] contain NaN"),
    Case("boxes-1000", thousand_boxes, check=check_thousand),
    Case("crops-nan", lambda c: E().infer_crops(np.full((1, 3, 256, 192), np.nan, np.float32)), InputError,
         r"crops contain NaN"),
    Case("crops-wrong-size", lambda c: E().infer_crops(np.zeros((1, 3, 64, 64), np.float32)), InputError,
         r"64x64 \(WxH\) but the model takes 192x256"),
    Case("crops-wrong-rank", lambda c: E().infer_crops(np.zeros((3, 256, 192), np.float32)), InputError, r"\(N,3,H,W\)"),
    # ---- Estimator arguments
    Case("unknown-model", lambda c: Estimator("dwpose-x"), InputError, r"unknown model 'dwpose-x'; choose one of"),
    Case("unknown-runtime", lambda c: Estimator(weights="random", runtime="tflite"), InputError, r"unknown runtime"),
    Case("batch-size-zero", lambda c: Estimator(weights="random", batch_size=0), InputError, r"batch_size.*>= 1"),
    Case("batch-size-str", lambda c: Estimator(weights="random", batch_size="8"), InputError, r"batch_size.*'8'"),
    Case("threads-negative", lambda c: Estimator(weights="random", threads=-2), InputError, r"threads must be a pos"),
    Case("threads-float", lambda c: Estimator(weights="random", threads=1.5), InputError, r"threads.*1.5"),
    Case("torch-device-bogus", lambda c: Estimator(weights="random", runtime="torch", device="gpu0"), InputError,
         r"unknown torch device 'gpu0'.*'cuda:N'"),
    Case("torch-fp16-on-cpu", lambda c: Estimator(weights="random", runtime="torch", precision="fp16"), InputError, r"CUDA only"),
    Case("precision-unknown", lambda c: Estimator(weights="random", runtime="onnxruntime", precision="fp8"),
         InputError, r"unknown precision 'fp8'"),
    Case("ncnn-device-cuda", lambda c: Estimator(runtime="ncnn", model_dir=model_dir("ncnn"), device="cuda"),
         InputError, r"ncnn runtime runs on the CPU", marks=(needs_ncnn,)),
    Case("openvino-device-missing", lambda c: Estimator(runtime="openvino", model_dir=model_dir("openvino"),
                                                        device="XPU"),
         InputError, r"OpenVINO device 'XPU' not available", marks=(needs_openvino,)),
    Case("detector-unknown", lambda c: Estimator(weights="random", detector="rcnn"), InputError, r"unknown detector"),
    Case("onnx-weights-on-torch", lambda c: Estimator(weights=str(model_dir("onnxruntime") / ONNX_NAME), runtime="torch"), InputError,
         r"runs on runtime='onnxruntime'"),
    Case("model-dir-on-torch", lambda c: Estimator(model_dir=model_dir("onnxruntime"), runtime="torch"), InputError,
         r"choose runtime onnxruntime, openvino or ncnn"),
    # ---- checkpoints (.pth)
    Case("pth-truncated", lambda c: Estimator(weights=c.file("t.pth", Path(c.ckpt).read_bytes()[:50_000])),
         WeightsError, r"cannot read checkpoint .*t\.pth.*complete mmpose \.pth"),
    Case("pth-empty", lambda c: Estimator(weights=c.file("e.pth", b"")), WeightsError, r"cannot read checkpoint"),
    Case("pth-random-bytes", lambda c: Estimator(weights=c.file("r.pth", os.urandom(4096))), WeightsError,
         r"cannot read checkpoint"),
    Case("pth-other-size", lambda c: Estimator("dwpose-t", weights=other_size_checkpoint(c)), WeightsError,
         r"does not fit dwpose-t \(it looks like a dwpose-s checkpoint\)"),
    Case("pth-tensor", lambda c: Estimator(weights=c.torch_file("x.pth", torch.zeros(3))), WeightsError,
         r"holds a Tensor, expected a dict"),
    Case("pth-no-pose-keys", lambda c: Estimator(weights=c.torch_file("k.pth", {"state_dict": {"fc.w": torch.zeros(2)}})),
         WeightsError, r"no backbone\.\*/head\.\* weights"),
    Case("pth-nan-weights", lambda c: Estimator(weights=nan_weights(c)), WeightsError, r"NaN/inf values in"),
    Case("pth-malicious-pickle", lambda c: Estimator(weights=malicious_checkpoint(c)), WeightsError,
         r"refused on purpose", after=check_payload_not_run),
    Case("weights-missing-file", lambda c: Estimator(weights=str(c.tmp / "absent.pth")), WeightsError,
         r"not found: it is neither an existing file nor a registry name"),
    Case("weights-directory", lambda c: Estimator(weights=str(c.tmp)), WeightsError, r"is not a file"),
    Case("weights-wrong-type", lambda c: Estimator(weights=3), WeightsError, r"got int"),
    Case("weights-registry-corrupt-cache", lambda c: Estimator("dwpose-s", weights=corrupt_cached_hf(c)),
         WeightsError, r"dw-ss_ucoco\.pth has 1000 bytes, expected 102933707 bytes.*Delete it"),
    # ---- ONNX files
    Case("onnx-truncated", lambda c: Estimator(runtime="onnxruntime", weights=c.file(
        "t.onnx", (model_dir("onnxruntime") / ONNX_NAME).read_bytes()[:100_000])), ModelFileError,
         r"t\.onnx is not a valid ONNX model \(truncated or corrupt\?\)"),
    Case("onnx-empty", lambda c: Estimator(runtime="onnxruntime", weights=c.file("e.onnx", b"")), ModelFileError,
         r"ONNX file is empty"),
    Case("onnx-garbage-openvino", lambda c: Estimator(runtime="openvino", weights=c.file("g.onnx", os.urandom(5000))),
         ModelFileError, r"not a valid ONNX model", marks=(needs_openvino,)),
    Case("onnx-garbage-ncnn", lambda c: Estimator(runtime="ncnn", weights=c.file("g.onnx", os.urandom(5000))),
         ModelFileError, r"not a valid ONNX model", marks=(needs_ncnn,)),
    Case("onnx-three-outputs", lambda c: Estimator(runtime="onnxruntime", weights=onnx_edit(c, "o.onnx", _three_outputs)),
         ModelFileError, r"1 inputs and 3 outputs; a DWPose/RTMPose model has one input and two"),
    Case("onnx-other-model-size", lambda c: Estimator("dwpose-l-384", runtime="onnxruntime",
                                                      weights=str(model_dir("onnxruntime") / ONNX_NAME)),
         ModelFileError, r"model input is 192x256 \(WxH\) but 288x384 was expected"),
    Case("onnx-nan-weights", lambda c: Estimator(runtime="onnxruntime", weights=onnx_edit(c, "n.onnx", _nan_weight)),
         ModelFileError, r"NaN/inf weights in \['head.final_layer.weight'\]"),
    Case("onnx-overflowing-weights", lambda c: Estimator(runtime="onnxruntime", weights=onnx_edit(
        c, "inf.onnx", _overflowing_weights))(photo(), PHOTO_BOXES), ModelFileError,
         r"onnxruntime/fp32 model returned NaN/inf logits for finite input"),
    Case("onnx-unknown-operator", lambda c: Estimator(runtime="onnxruntime", weights=unknown_operator_onnx(c)),
         ModelFileError, r"onnxruntime cannot load .*evil.ops:Foo.*re-export"),
    Case("onnx-unknown-operator-openvino", lambda c: Estimator(runtime="openvino", weights=unknown_operator_onnx(c)),
         ModelFileError, r"OpenVINO cannot read .*evil.ops.Foo", marks=(needs_openvino,)),
    Case("onnx-folder", lambda c: Estimator(runtime="onnxruntime", weights=folder_named(c, "x.onnx")), ModelFileError,
         r"is a folder, not an ONNX file"),
    # ---- exported folders: manifest, OpenVINO IR, ncnn
    Case("manifest-wrong-sha256", lambda c: Estimator(runtime="onnxruntime", model_dir=c.damaged_dir(
        "onnxruntime", "model", lambda b: b[:-1] + b"\0", rehash=False)), ModelFileError,
         r"does not match its sha256 in manifest.json.*re-export"),
    Case("manifest-missing", lambda c: Estimator(runtime="onnxruntime", model_dir=c.tmp), ModelFileError,
         r"has no manifest.json"),
    Case("manifest-not-json", lambda c: Estimator(runtime="onnxruntime", model_dir=c.manifest_dir(lambda d: "{oops")),
         ModelFileError, r"manifest.json is malformed \(JSONDecodeError"),
    Case("manifest-binary", lambda c: Estimator(runtime="onnxruntime", model_dir=c.manifest_dir(lambda d: b"\xff\0")),
         ModelFileError, r"malformed \(UnicodeDecodeError"),
    Case("manifest-not-object", lambda c: Estimator(runtime="onnxruntime", model_dir=c.manifest_dir(lambda d: "[]")),
         ModelFileError, r"top level is a list"),
    Case("manifest-path-escape", lambda c: Estimator(runtime="onnxruntime", model_dir=c.manifest_dir(
        lambda d: d["artifacts"][0]["files"].update(model="../../../etc/passwd"))), ModelFileError,
         r"'../../../etc/passwd' is not a plain name inside the model folder"),
    Case("manifest-files-not-a-mapping", lambda c: Estimator(runtime="onnxruntime", model_dir=c.manifest_dir(
        lambda d: d["artifacts"][0].update(files="model.onnx"))), ModelFileError, r"files must map roles to strings"),
    Case("manifest-wrong-role", lambda c: Estimator(runtime="onnxruntime", model_dir=c.manifest_dir(
        lambda d: [d["artifacts"][0][t].update(weights=d["artifacts"][0][t].pop("model")) for t in ("files", "sha256")])),
         ModelFileError, r"onnxruntime needs the files \['model'\] but got \['weights'\]"),
    Case("manifest-no-sha256", lambda c: Estimator(runtime="onnxruntime", model_dir=c.manifest_dir(
        lambda d: d["artifacts"][0].update(sha256={}))), ModelFileError, r"records no sha256"),
    Case("manifest-bad-input-size", lambda c: Estimator(runtime="onnxruntime", model_dir=c.manifest_dir(
        lambda d: d.update(input_size="192x256"))), ModelFileError, r"input_size '192x256' is not \[W, H\]"),
    Case("manifest-other-model", lambda c: Estimator("dwpose-s", runtime="onnxruntime", model_dir=model_dir(
        "onnxruntime")), ModelFileError, r"holds an export of dwpose-t, not dwpose-s"),
    Case("manifest-lacks-artifact", lambda c: Estimator(runtime="onnxruntime", precision="fp16",
                                                        model_dir=model_dir("onnxruntime")),
         ModelFileError, r"no onnxruntime/fp16 export.*dwpose-edge export"),
    Case("model-dir-missing", lambda c: Estimator(runtime="onnxruntime", model_dir=c.tmp / "nope"), ModelFileError,
         r"does not exist or is not a folder"),
    Case("onnx-in-folder-rehashed-garbage", lambda c: Estimator(runtime="onnxruntime", model_dir=c.damaged_dir(
        "onnxruntime", "model", lambda b: b[: len(b) // 3])), ModelFileError, r"not a valid ONNX model"),
    Case("ir-xml-garbage", lambda c: Estimator(runtime="openvino", model_dir=c.damaged_dir(
        "openvino", "xml", lambda b: b"<net><layers>")), ModelFileError, r"OpenVINO cannot read .*re-export",
         marks=(needs_openvino,)),
    Case("ir-bin-truncated", lambda c: Estimator(runtime="openvino", model_dir=c.damaged_dir(
        "openvino", "bin", lambda b: b[:1000])), ModelFileError, r"OpenVINO cannot read .*Incorrect weights",
         marks=(needs_openvino,)),
    Case("ir-bin-empty", lambda c: Estimator(runtime="openvino", model_dir=c.damaged_dir(
        "openvino", "bin", lambda b: b"")), ModelFileError, r"OpenVINO IR file is empty", marks=(needs_openvino,)),
    Case("ncnn-param-truncated", lambda c: Estimator(runtime="ncnn", model_dir=c.damaged_dir(
        "ncnn", "param", lambda b: b[: len(b) // 2])), ModelFileError, r"truncated", marks=(needs_ncnn,)),
    Case("ncnn-param-garbage", lambda c: Estimator(runtime="ncnn", model_dir=c.damaged_dir(
        "ncnn", "param", lambda b: os.urandom(300))), ModelFileError, r"not an ncnn text param|cannot read ncnn param",
         marks=(needs_ncnn,)),
    Case("ncnn-bin-truncated", lambda c: Estimator(runtime="ncnn", model_dir=c.damaged_dir(
        "ncnn", "bin", lambda b: b[:-4096])), ModelFileError, r"truncated or does not belong", marks=(needs_ncnn,)),
    Case("ncnn-bin-extra-bytes", lambda c: Estimator(runtime="ncnn", model_dir=c.damaged_dir(
        "ncnn", "bin", lambda b: b + b"\0" * 64)), ModelFileError, r"belong to another model", marks=(needs_ncnn,)),
    # ---- missing optional packages (hidden via sys.modules[name] = None)
    Case("missing-openvino", lambda c: (hide(c, "openvino"), Estimator(runtime="openvino", model_dir=model_dir(
        "openvino"))), RuntimeUnavailableError, r"pip install 'dwpose-edge\[openvino\]'", marks=(needs_openvino,)),
    Case("missing-ncnn", lambda c: (hide(c, "ncnn"), Estimator(runtime="ncnn", model_dir=model_dir("ncnn"))),
         RuntimeUnavailableError, r"'ncnn' package.*pip install 'dwpose-edge\[ncnn\]'", marks=(needs_ncnn,)),
    Case("missing-onnxruntime", lambda c: (hide(c, "onnxruntime"), Estimator(
        runtime="onnxruntime", weights=str(model_dir("onnxruntime") / ONNX_NAME))), RuntimeUnavailableError,
         r"'onnxruntime' package"),
    Case("missing-pnnx-on-first-export", lambda c: (hide(c, "pnnx"), c.monkeypatch.setenv(
        "DWPOSE_EDGE_CACHE", str(c.tmp / "cache")), Estimator(weights="random", runtime="ncnn")),
         RuntimeUnavailableError, r"'pnnx' package.*dwpose-edge\[export\]", marks=(needs_ncnn,)),
    Case("missing-openvino-exporter", lambda c: (hide(c, "openvino"), _export_openvino(
        model_dir("onnxruntime") / ONNX_NAME, c.tmp / "m.xml")), RuntimeUnavailableError, r"dwpose-edge\[openvino\]"),
    # ---- exporters
    Case("export-unknown-target", lambda c: _export_model("dwpose-t", "random", c.tmp, targets=["tflite"]), InputError,
         r"unknown export target 'tflite'"),
    Case("export-unknown-precision", lambda c: _export_model("dwpose-t", "random", c.tmp, precisions=["fp64"]),
         InputError, r"unknown precision 'fp64'"),
    Case("export-truncated-pth", lambda c: _export_model("dwpose-t", c.file("t.pth", b"PK\x03\x04"), c.tmp / "o"),
         WeightsError, r"cannot read checkpoint"),
    Case("export-other-size-pth", lambda c: _export_model("dwpose-t", other_size_checkpoint(c), c.tmp / "o"),
         WeightsError, r"does not fit dwpose-t"),
    Case("export-corrupt-onnx", lambda c: _export_model("dwpose-t", c.file("c.onnx", b"\x08\x07garbage"), c.tmp / "o"),
         ModelFileError, r"not a valid ONNX model"),
    Case("export-openvino-corrupt-onnx", lambda c: _export_openvino(c.file("c.onnx", b"junk"), c.tmp / "m.xml"),
         ModelFileError, r"not a valid ONNX model", marks=(needs_openvino,)),
    Case("export-openvino-int8", lambda c: _export_openvino(model_dir("onnxruntime") / ONNX_NAME, c.tmp / "m.xml",
                                                            "int8"), InputError, r"int8 goes through NNCF",
         marks=(needs_openvino,)),
    Case("export-ncnn-corrupt-onnx", lambda c: _onnx_to_ncnn(c.file("c.onnx", os.urandom(999)), c.tmp),
         ModelFileError, r"not a valid ONNX model", marks=(needs_ncnn,)),
    Case("export-onnx-unwritable", lambda c: _export_onnx(c.file("afile", b"x") + "/sub/m.onnx"), ExportError,
         r"cannot create the folder of .*writable output path"),
    Case("export-cache-unwritable", lambda c: (c.monkeypatch.setenv("DWPOSE_EDGE_CACHE", c.file("f", b"x")),
                                               Estimator(weights="random", runtime="onnxruntime")),
         ExportError, r"cannot create the export cache folder .*DWPOSE_EDGE_CACHE"),
    # ---- the command line (exit code 2 and a one-line error on stderr, no traceback)
    Case("cli-unknown-model", lambda c: c.cli("predict", DATA_DIR / "astronaut.jpg", "--model", "dwpose-q"),
         exit_code=2, match=r"error: unknown model 'dwpose-q'"),
    Case("cli-input-missing", lambda c: c.cli("predict", c.tmp / "none.jpg", *ort_cli_args()), exit_code=2,
         match=r"error: input not found"),
    Case("cli-empty-folder", lambda c: c.cli("predict", c.tmp, *ort_cli_args()), exit_code=2,
         match=r"no images or videos found"),
    Case("cli-empty-image-file", lambda c: c.cli("predict", c.file("e.png", b""), *ort_cli_args()), exit_code=2,
         match=r"cannot read image .*e\.png"),
    Case("cli-undecodable-video", lambda c: c.cli("predict", c.file("v.mp4", os.urandom(2000)), *ort_cli_args()),
         exit_code=2, match=r"cannot open or decode video"),
    Case("cli-truncated-video", cli_truncated_video, check=check_cli_ok_with_warning),
    Case("cli-out-is-folder", lambda c: c.cli("predict", DATA_DIR / "astronaut.jpg", *ort_cli_args(), "--out", c.tmp),
         exit_code=2, match=r"--out .* is a folder; give a file name"),
    Case("cli-out-folder-created", lambda c: c.cli("predict", DATA_DIR / "astronaut.jpg", *ort_cli_args(), "--out",
                                                   c.tmp / "new" / "sub" / "res.json"), check=check_cli_creates_out_folder),
    Case("cli-draw-under-file", lambda c: c.cli("predict", DATA_DIR / "astronaut.jpg", *ort_cli_args(), "--draw",
                                                c.file("f", b"") + "/d"), exit_code=2,
         match=r"cannot create the --draw folder"),
    Case("cli-threads-negative", lambda c: c.cli("predict", DATA_DIR / "astronaut.jpg", "--threads", "-1"),
         exit_code=2, match=r"threads must be a positive integer"),
    Case("cli-runtime-choice", lambda c: c.cli("predict", DATA_DIR / "astronaut.jpg", "--runtime", "tflite"),
         exit_code=2, match=r"invalid choice: 'tflite'"),
    Case("cli-corrupt-model-dir", lambda c: c.cli("predict", DATA_DIR / "astronaut.jpg", "--runtime", "onnxruntime",
                                                  "--model-dir", c.damaged_dir("onnxruntime", "model",
                                                                               lambda b: b[:-9], rehash=False)),
         exit_code=2, match=r"does not match its sha256"),
    Case("cli-export-bad-target", lambda c: c.cli("export", "--weights", "random", "--to", "coreml", "--out", c.tmp),
         exit_code=2, match=r"unknown export target 'coreml'"),
    Case("cli-export-unknown-model", lambda c: c.cli("export", "--model", "dwpose-x", "--weights", "random",
                                                     "--to", "onnx", "--out", c.tmp),
         exit_code=2, match=r"unknown model 'dwpose-x'"),
    Case("cli-export-out-is-a-file", lambda c: c.cli("export", "--weights", "random", "--to", "onnx",
                                                     "--out", c.file("afile", b"x")),
         exit_code=2, match=r"cannot create the export folder"),
]


def _export_model(*args, **kwargs):
    from dwpose_edge.export.pipeline import export_model

    return export_model(*args, log=lambda m: None, **kwargs)


def _export_openvino(*args):
    from dwpose_edge.export.to_openvino import export_openvino

    return export_openvino(*args)


def _onnx_to_ncnn(*args):
    from dwpose_edge.export.to_ncnn import onnx_to_ncnn

    return onnx_to_ncnn(*args)


def _export_onnx(path: str):
    from dwpose_edge.export.to_onnx import export_onnx
    from dwpose_edge.models import build_model

    return export_onnx(build_model("dwpose-t"), path)


def test_the_table_is_big_unique_and_documented():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 30
    assert all((c.error is None) != (c.check is None) or c.exit_code is not None for c in CASES)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "errors.md").read_text()
    assert [i for i in ids if f"| `{i}` |" not in doc] == []


@pytest.fixture
def ctx(tmp_path, monkeypatch, tiny_checkpoint, capsys) -> Ctx:
    return Ctx(tmp_path, monkeypatch, tiny_checkpoint, capsys)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input(case: Case, ctx: Ctx):
    if case.exit_code is not None:
        rc, err = case.call(ctx)
        assert rc == case.exit_code, err
        assert re.search(case.match, err), err
        assert "Traceback" not in err
    elif case.error is not None:
        with pytest.raises(case.error, match=case.match) as info:
            case.call(ctx)
        assert isinstance(info.value, DwposeEdgeError)  # never a runtime's own exception type
        assert len(str(info.value)) > 40, "a message names the problem and what to do"
    else:
        case.check(case.call(ctx), ctx)
    if case.after is not None:
        case.after(ctx)
