import pytest
import torch

from dwpose_edge.errors import WeightsError
from dwpose_edge.models import build_model, load_checkpoint
from dwpose_edge.specs import MODEL_SPECS

# Parameter counts published with the mmpose configs (SPEC.md), in millions.
PUBLISHED_PARAMS = {"dwpose-t": 5.52, "dwpose-s": 8.38, "dwpose-m": 17.95, "dwpose-l": 33.48, "dwpose-l-384": 33.61}


@pytest.mark.parametrize("name", sorted(MODEL_SPECS))
def test_param_count_and_output_shapes(name):
    model = build_model(name)
    n = sum(p.numel() for p in model.parameters()) / 1e6
    assert round(n, 2) == PUBLISHED_PARAMS[name]
    w, h = model.spec.input_size
    with torch.inference_mode():
        sx, sy = model(torch.zeros(2, 3, h, w))
    assert sx.shape == (2, 133, 2 * w) and sy.shape == (2, 133, 2 * h)


def test_state_dict_key_layout():
    keys = build_model("dwpose-t").state_dict()
    for k in ["backbone.stem.0.conv.weight", "backbone.stem.2.bn.num_batches_tracked",
              "backbone.stage1.1.blocks.0.conv2.depthwise_conv.conv.weight",
              "backbone.stage4.1.conv1.conv.weight", "backbone.stage4.2.attention.fc.bias",
              "head.final_layer.weight", "head.mlp.0.g", "head.mlp.1.weight", "head.gau.uv.weight",
              "head.gau.gamma", "head.gau.res_scale.scale", "head.gau.ln.g", "head.cls_x.weight"]:
        assert k in keys, k
    assert not any(k.endswith("bias") for k in keys if ".gau." in k or "cls_" in k)


def test_checkpoint_round_trip(tiny_checkpoint):
    model = load_checkpoint(build_model("dwpose-t"), tiny_checkpoint)
    state = torch.load(tiny_checkpoint, weights_only=True)["state_dict"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_wrong_size_checkpoint_names_the_variant(tiny_checkpoint):
    with pytest.raises(WeightsError, match=r"dwpose-s.*looks like a dwpose-t"):
        load_checkpoint(build_model("dwpose-s"), tiny_checkpoint)


def test_distiller_checkpoint_takes_student(tiny_checkpoint):
    state = torch.load(tiny_checkpoint, weights_only=True)["state_dict"]
    teacher = build_model("dwpose-s").state_dict()
    distill = {**{f"student.{k}": v for k, v in state.items()}, **{f"teacher.{k}": v for k, v in teacher.items()}}
    model = load_checkpoint(build_model("dwpose-t"), {"state_dict": distill})
    assert torch.equal(model.state_dict()["head.cls_x.weight"], state["head.cls_x.weight"])
