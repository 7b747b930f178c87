"""The benchmark report's 'auto' section shows a real decision of dwpose_edge.auto.choose."""
from __future__ import annotations

from dwpose_edge.auto import choose
from dwpose_edge.bench.report import _auto_md


def test_auto_section_lists_the_choice_and_every_candidate(tmp_path):
    decision = choose("dwpose-t", None, candidates=["onnxruntime/fp32", "openvino/fp32"], threads=1,
                      cache_folder=tmp_path)
    text = "\n".join(_auto_md({"auto": {"dwpose-t": decision.as_dict()}}, "dwpose-t"))
    assert f"Chooses **{decision.runtime} {decision.precision}**" in text
    assert "| onnxruntime fp32 |" in text and "| openvino fp32 |" in text
    # both candidates run the same fp32 ONNX: both agree with the reference at 100% within 1 px
    assert text.count("| 100.0% | 100.0% | ok |") == 2
