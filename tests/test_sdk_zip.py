"""mmdeploy SDK zips: safe extraction (traversal, links, sizes, duplicates refused), pipeline.json parsing, and
a pose zip built from the embedded model's ONNX giving the same keypoints as the plain ONNX."""
from __future__ import annotations

import json
import os
import stat
import zipfile

import numpy as np
import pytest
from sdk_models import deploy, detection_pipeline, end2end_onnx, pose_pipeline, sdk_files, write_zip
from shared_models import runtime_params

from dwpose_edge import sdk_zip
from dwpose_edge.embedded import default_onnx
from dwpose_edge.errors import InputError, ModelFileError
from dwpose_edge.postprocess import decode_simcc
from dwpose_edge.preprocess import crop_boxes
from dwpose_edge.runtimes.onnxruntime_runtime import OnnxRuntime
from dwpose_edge.runtimes.pose_onnx import pose_onnx
from dwpose_edge.sdk_pipeline import parse_sdk
from dwpose_edge.specs import get_spec, pose_spec
from dwpose_edge.weights import CACHE_ENV

SQUARE_114 = {"type": "Pad", "pad_to_square": True, "pad_val": {"img": [114.0, 114.0, 114.0]}}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def det_files(tmp_path):
    onnx_path = end2end_onnx(tmp_path / "end2end.onnx", np.zeros((1, 5), np.float32), np.zeros(1))
    return sdk_files(onnx_path, detection_pipeline(pad=SQUARE_114), deploy())


@pytest.fixture(scope="module")
def pose_zip(tmp_path_factory):
    """The embedded dwpose-t ONNX (a real SimCC model) packed as an mmdeploy SDK zip."""
    folder = tmp_path_factory.mktemp("pose")
    return write_zip(folder / "rtmpose_stub.zip", sdk_files(default_onnx("dwpose-t"), pose_pipeline(),
                                                              deploy("PoseDetector")))


def test_extracts_the_three_members_once(tmp_path, det_files, cache):
    z = write_zip(tmp_path / "yolox_tiny_8xb8-300e_humanart-6f3252f9.zip", det_files)
    model = sdk_zip.open_sdk_zip(z)
    digest = sdk_zip.sha256_file(z)
    assert model.folder == cache / "sdk" / f"yolox_tiny_8xb8-300e_humanart-6f3252f9-{digest[:16]}"
    assert sorted(os.listdir(model.folder)) == ["deploy.json", "end2end.onnx", "pipeline.json"]  # no detail.json
    assert model.onnx.read_bytes() == det_files["end2end.onnx"]
    p = model.pipeline
    assert (p.task, p.onnx_name, p.input_size, p.keep_ratio, p.to_rgb) == ("detection", "end2end.onnx", (640, 640),
                                                                          True, False)
    assert (p.mean, p.std, p.score_threshold) == ((0, 0, 0), (1, 1, 1), 0.01)
    assert [(s.to_square, s.value, s.size_divisor, s.after_normalize) for s in p.pads] == [
        (True, 114.0, 1, False), (False, 0.0, 1, True)]
    # a second open reuses the folder; a damaged extraction (wrong size) is redone
    mtime = model.onnx.stat().st_mtime_ns
    assert sdk_zip.open_sdk_zip(z, digest).onnx.stat().st_mtime_ns == mtime
    model.onnx.write_bytes(b"truncated")
    assert sdk_zip.open_sdk_zip(z).onnx.read_bytes() == det_files["end2end.onnx"]
    assert [n for n in os.listdir(model.folder.parent) if n.startswith(".")] == []  # no temporary folders left
    # bare members (no top folder) work too
    flat = write_zip(tmp_path / "flat.zip", det_files, top=None)
    assert sdk_zip.open_sdk_zip(flat).pipeline.input_size == (640, 640)


@pytest.mark.parametrize("name, why", [("../evil.json", "climbs out"), ("model/../../evil.json", "climbs out"),
                                       ("/etc/evil.json", "absolute path"), ("C:/evil.json", "absolute path"),
                                       ("model\\..\\evil.json", "backslash")])
def test_unsafe_member_names_refuse_the_zip(tmp_path, det_files, name, why, cache):
    z = write_zip(tmp_path / "bad.zip", det_files)
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr(name, b"x")
    with pytest.raises(ModelFileError, match=f"member {name!r}.*{why}.*refusing the whole zip".replace("\\", "\\\\")):
        sdk_zip.open_sdk_zip(z)
    assert not (cache / "sdk").exists() or not any((cache / "sdk").iterdir())
    assert not (tmp_path / "evil.json").exists()


def test_symlink_member_refused(tmp_path, det_files):
    z = write_zip(tmp_path / "link.zip", {k: v for k, v in det_files.items() if k != "pipeline.json"})
    with zipfile.ZipFile(z, "a") as zf:
        info = zipfile.ZipInfo("model/pipeline.json")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ModelFileError, match="'model/pipeline.json' is a symbolic link"):
        sdk_zip.open_sdk_zip(z)


def test_duplicates_refused(tmp_path, det_files):
    z = write_zip(tmp_path / "dup.zip", det_files)
    with zipfile.ZipFile(z, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("model/deploy.json", b"{}")
    with pytest.raises(ModelFileError, match="'model/deploy.json' appears twice"):
        sdk_zip.open_sdk_zip(z)
    z2 = write_zip(tmp_path / "two.zip", det_files)
    with zipfile.ZipFile(z2, "a") as zf:
        zf.writestr("other/deploy.json", b"{}")
    with pytest.raises(ModelFileError, match="two members are named 'deploy.json'"):
        sdk_zip.open_sdk_zip(z2)


def test_size_caps(tmp_path, det_files, monkeypatch):
    z = write_zip(tmp_path / "big.zip", det_files)
    monkeypatch.setattr(sdk_zip, "MAX_ONNX_BYTES", len(det_files["end2end.onnx"]) - 1)
    with pytest.raises(ModelFileError, match=r"end2end.onnx declares \d+ bytes, more than the \d+-byte cap"):
        sdk_zip.open_sdk_zip(z)
    monkeypatch.setattr(sdk_zip, "MAX_JSON_BYTES", 100)
    with pytest.raises(ModelFileError, match="deploy.json declares"):
        sdk_zip.open_sdk_zip(z)


def test_member_inflating_beyond_its_declared_size_refused(tmp_path, det_files):
    # a central directory that understates a member's size (a zip bomb's trick): the member is refused
    z = write_zip(tmp_path / "lie.zip", det_files)
    with zipfile.ZipFile(z) as zf:
        size = zf.getinfo("model/pipeline.json").file_size
    data = bytearray(z.read_bytes())
    pos = data.find(b"PK\x01\x02")  # central directory entries: uncompressed size at +24, name length at +28
    while data[pos + 46:pos + 46 + int.from_bytes(data[pos + 28:pos + 30], "little")] != b"model/pipeline.json":
        pos = data.find(b"PK\x01\x02", pos + 4)
    data[pos + 24:pos + 28] = (size - 10).to_bytes(4, "little")
    z.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="pipeline.json"):
        sdk_zip.open_sdk_zip(z)


def test_missing_members_and_not_a_zip(tmp_path, det_files):
    for missing in ("pipeline.json", "deploy.json", "end2end.onnx"):
        z = write_zip(tmp_path / f"no-{missing}.zip", {k: v for k, v in det_files.items() if k != missing})
        with pytest.raises(ModelFileError, match=f"has no {missing}.*not an mmdeploy SDK zip"):
            sdk_zip.open_sdk_zip(z)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelFileError, match="not a readable zip file"):
        sdk_zip.open_sdk_zip(junk)
    with pytest.raises(ModelFileError, match="not found"):
        sdk_zip.open_sdk_zip(tmp_path / "absent.zip")
    bad_json = dict(det_files, **{"pipeline.json": b"{not json"})
    with pytest.raises(ModelFileError, match="pipeline.json is not valid JSON"):
        sdk_zip.open_sdk_zip(write_zip(tmp_path / "badjson.zip", bad_json))


def test_pipeline_parse_errors():
    ok = detection_pipeline(pad=SQUARE_114)
    assert parse_sdk(ok, deploy()).task == "detection"
    with pytest.raises(ModelFileError, match="transform 'RandomFlip' is not supported"):
        parse_sdk(detection_pipeline(extra=[{"type": "RandomFlip"}]), deploy())
    with pytest.raises(ModelFileError, match="backend 'tensorrt'.*onnxruntime"):
        parse_sdk(ok, deploy(net="end2end.engine", backend="tensorrt"))
    with pytest.raises(ModelFileError, match="not a bare file name"):
        parse_sdk(ok, deploy(net="../end2end.onnx"))
    with pytest.raises(ModelFileError, match="says task 'PoseDetector' but the pipeline ends in ResizeBBox"):
        parse_sdk(ok, deploy("PoseDetector"))
    seg = json.loads(json.dumps(ok))
    seg["pipeline"]["tasks"][2]["component"] = "ResizeInstanceMask"
    with pytest.raises(ModelFileError, match="'ResizeInstanceMask' is not supported"):
        parse_sdk(seg, deploy())
    with pytest.raises(ModelFileError, match="pad_val .* differs per channel"):
        parse_sdk(detection_pipeline(pad={"type": "Pad", "size": [640, 640], "pad_val": {"img": [1, 2, 3]}}),
                  deploy())
    with pytest.raises(ModelFileError, match="not an mmdeploy SDK pipeline"):
        parse_sdk({"pipeline": {}}, deploy())
    p = parse_sdk(pose_pipeline((288, 384)), deploy("PoseDetector"))
    assert (p.task, p.input_size, p.bbox_padding, p.simcc_split_ratio, p.to_rgb) == ("pose", (288, 384), 1.25, 2.0,
                                                                                    True)
    udp = pose_pipeline()
    udp["pipeline"]["tasks"][0]["transforms"][2]["use_udp"] = True
    with pytest.raises(ModelFileError, match="use_udp is not supported"):
        parse_sdk(udp, deploy("PoseDetector"))


def test_pose_zip_gives_the_keypoints_of_the_plain_onnx(pose_zip, grace_hopper):
    plain, zipped = pose_onnx(default_onnx("dwpose-t")), pose_onnx(pose_zip)
    assert plain.input_size == zipped.input_size == (192, 256) and plain.model is zipped.model is None
    assert zipped.path.name == "end2end.onnx" and zipped.path.read_bytes() == default_onnx("dwpose-t").read_bytes()
    boxes = np.array([[0, 0, grace_hopper.shape[1], grace_hopper.shape[0]], [50, 40, 300, 500]], np.float32)
    crops, centers, scales = crop_boxes(grace_hopper, boxes, plain.input_size)
    results = []
    for src in (plain, zipped):
        sx, sy = OnnxRuntime(src.path, threads=1, input_size=src.input_size).infer(crops)
        results.append(decode_simcc(sx, sy, centers, scales, src.input_size))
    (k0, s0), (k1, s1) = results
    assert k0.shape == (2, 133, 2)
    np.testing.assert_array_equal(k0, k1)
    np.testing.assert_array_equal(s0, s1)
    assert (s0 > 0).mean() > 0.5  # a trained model: most keypoints found


def test_pose_zip_normalisation_is_checked(tmp_path):
    model = default_onnx("dwpose-t")
    cases = [(pose_pipeline(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]), "normalised with mean"),
             (pose_pipeline(to_rgb=False), "expects BGR crops"),
             (pose_pipeline(padding=1.0), "pads person boxes by 1.0"),
             (pose_pipeline(split=3.0), "split ratio 3.0"),
             (pose_pipeline(size=(288, 384)), "takes 192x256 .* declare 288x384")]
    for i, (pipeline, message) in enumerate(cases):
        z = write_zip(tmp_path / f"p{i}.zip", sdk_files(model, pipeline, deploy("PoseDetector")))
        with pytest.raises(ModelFileError, match=message):
            pose_onnx(z)
    det = write_zip(tmp_path / "det.zip", sdk_files(end2end_onnx(tmp_path / "e.onnx", np.zeros((1, 5)), np.zeros(1)),
                                                    detection_pipeline(pad=SQUARE_114), deploy()))
    with pytest.raises(ModelFileError, match="SDK detection model, not a pose model: pass it as detector="):
        pose_onnx(det)


def test_rtmw_specs_run_from_onnx_only():
    assert pose_spec("rtmw-l-384x288").input_size == (288, 384)
    assert pose_spec("rtmw-m-256x192").simcc_bins == (384, 512)
    assert pose_spec("dwpose-t") is get_spec("dwpose-t")
    with pytest.raises(InputError, match="rtmw-l-384x288 runs from its ONNX only"):
        get_spec("rtmw-l-384x288")


@pytest.mark.parametrize("runtime", runtime_params(("onnxruntime", "openvino")))
def test_estimator_on_the_pose_zip_equals_the_plain_onnx(pose_zip, grace_hopper, runtime):
    from dwpose_edge.estimator import Estimator

    boxes = np.array([[0, 0, grace_hopper.shape[1], grace_hopper.shape[0]], [50, 40, 300, 500]], np.float32)
    plain = Estimator(weights=default_onnx("dwpose-t"), runtime=runtime, threads=1)(grace_hopper, boxes)
    zipped = Estimator(weights=pose_zip, runtime=runtime, threads=1)(grace_hopper, boxes)
    np.testing.assert_array_equal(plain.keypoints, zipped.keypoints)
    np.testing.assert_array_equal(plain.scores, zipped.scores)
    # an RTMW model name with a file: the crop size must agree with the spec (RTMW-l 384x288 takes 288x384 crops)
    assert Estimator(model="rtmw-m-256x192", weights=str(pose_zip), runtime=runtime).input_size == (192, 256)
    with pytest.raises(ModelFileError, match=r"model input is 192x256 \(WxH\) but 288x384 was expected"):
        Estimator(model="rtmw-l-384x288", weights=pose_zip, runtime=runtime)


def test_estimator_refuses_a_zip_with_other_normalisation(tmp_path):
    from dwpose_edge.estimator import Estimator

    z = write_zip(tmp_path / "bgr.zip", sdk_files(default_onnx("dwpose-t"), pose_pipeline(to_rgb=False),
                                                  deploy("PoseDetector")))
    with pytest.raises(ModelFileError, match="expects BGR crops"):
        Estimator(weights=z)


def test_estimator_checks_the_declared_size_of_a_dynamic_model(tmp_path):
    import onnx

    from dwpose_edge.estimator import Estimator

    proto = onnx.load(str(default_onnx("dwpose-t")))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"  # H, W dynamic: only pipeline.json says the size
    onnx.save(proto, str(tmp_path / "dyn.onnx"))
    z = write_zip(tmp_path / "dyn.zip", sdk_files(tmp_path / "dyn.onnx", pose_pipeline(size=(288, 384)),
                                                  deploy("PoseDetector")))
    assert pose_onnx(z).input_size == (288, 384)
    with pytest.raises(ModelFileError, match="declares 288x384 \\(WxH\\) crops but rtmw-m-256x192 takes 192x256"):
        Estimator(model="rtmw-m-256x192", weights=z)
