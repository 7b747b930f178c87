"""Cold start per runtime (bench/coldstart.py): fresh processes, real imports, real first keypoints."""
from __future__ import annotations

from dwpose_edge.bench.coldstart import cold_start_table
from dwpose_edge.bench.report import _cold_start_md


def test_cold_start_table_measures_fresh_processes():
    table = cold_start_table(["onnxruntime", "torch", "nosuch"], {}, threads=1, repeats=1)
    ort, torch_row = table["onnxruntime"], table["torch"]
    assert ort["status"] == torch_row["status"] == "ok"
    assert table["nosuch"]["status"].startswith("failed: ") and "unknown runtime" in table["nosuch"]["status"]
    for row in (ort, torch_row):
        assert 0 < row["import_s"] < row["total_s"] and row["load_s"] > 0 and row["first_s"] > 0
        assert row["total_s"] >= row["import_s"] + row["load_s"] + row["first_s"]
    # the onnxruntime path never imports torch; the torch runtime does, and its process is the larger
    assert ort["torch_loaded"] is False and torch_row["torch_loaded"] is True
    assert ort["peak_rss_mb"] < torch_row["peak_rss_mb"]


def test_cold_start_goes_into_the_report():
    report = {"settings": {"threads": 1},
              "cold_start": {"dwpose-t": {"onnxruntime": {"status": "ok", "import_s": 0.5, "load_s": 0.2,
                                                          "first_s": 0.05, "total_s": 0.8, "peak_rss_mb": 150.0,
                                                          "torch_loaded": False, "repeats": 3}}}}
    text = "\n".join(_cold_start_md(report, "dwpose-t"))
    assert "### Cold start" in text and "| onnxruntime | ok | 0.50 | 0.20 | 0.05 | 0.80 | 150 | no |" in text
