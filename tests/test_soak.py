"""Memory soak (bench/soak.py): RSS after many Estimator calls stays within a bound of its post-warm-up value.

The default run does 150 calls per runtime (a leak of >= 100 KB per call, e.g. a crop batch or a logits array
kept alive per call, crosses its 15 MB bound); `make test-all` runs the full 10,000 calls against 30 MB.
"""
from __future__ import annotations

import numpy as np
import pytest

from dwpose_edge.bench.soak import HEADER, SoakResult, format_row, main, rss_mb, soak, soak_runtime
from shared_models import RUNTIMES, estimator, installed

AVAILABLE = [r for r in RUNTIMES if installed(r)]


def test_short_soak_every_runtime(capsys):
    results = soak(AVAILABLE, calls=150, warmup=20, bound_mb=15, make_estimator=estimator)
    table = capsys.readouterr().out
    for r in results:
        assert r.ok, format_row(r)
        assert r.errors_raised == 150 // 25  # the bad-box calls raised InputError and the loop went on
        assert r.runtime in table
    assert [r.runtime for r in results] == AVAILABLE


def test_soak_detects_a_leak():
    """A runtime that keeps every batch it sees (a real leak of ~0.6 MB per call) fails the bound."""
    kept = []

    def leaky(runtime):
        est = estimator(runtime)
        infer = est.runtime.infer

        def infer_and_keep(batch):
            kept.append(batch.copy())
            return infer(batch)
        est.runtime.infer = infer_and_keep
        return est

    result = soak_runtime("onnxruntime", calls=100, make_estimator=leaky, warmup=5, bound_mb=15)
    assert not result.ok and result.growth_mb > 15, result
    assert len(kept) == 105 - 105 // 25


def test_rss_reading_matches_proc_status():
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    assert abs(rss_mb() - kb / 1024) < 20
    grown = np.ones(50 * 2**20 // 8)  # 50 MB touched
    assert rss_mb() - kb / 1024 > 40
    del grown


def test_table_and_exit_code():
    ok = SoakResult("ncnn", 10, 5, 100.0, 101.0, 102.0, 30.0, 1.0, 0)
    bad = SoakResult("torch", 10, 5, 100.0, 140.0, 140.0, 30.0, 1.0, 0)
    assert ok.ok and not bad.ok and bad.growth_mb == 40.0
    assert format_row(bad).endswith("NO") and "runtime" in HEADER


def test_cli_runs_and_fails_on_growth(capsys):
    assert main(["--calls", "5", "--warmup", "2", "--runtimes", "onnxruntime"]) == 0
    assert "onnxruntime" in capsys.readouterr().out
    assert main(["--calls", "5", "--warmup", "2", "--runtimes", "onnxruntime", "--bound-mb", "-1"]) == 1


@pytest.mark.slow
def test_full_soak_10000_calls_every_runtime():
    results = soak(AVAILABLE, calls=10_000, warmup=50, make_estimator=estimator)
    assert all(r.ok for r in results), "\n".join(format_row(r) for r in results)
