"""pytest-benchmark: video tracking (`pytest bench/benchmarks/test_bench_tracking.py`).

Goal of issue #20, on a real clip (OpenCV's vtest.avi, 768x576 pedestrians) with the offline HOG detector:
`det_every=10` runs >= 4x the frames/s of `det_every=1`, every person carries a track_id and the median
track lasts >= 10 frames. Both speeds come from one run (the machine is noisy), pipelined as the CLI runs.
The same run gives what the pipeline (decode + detection in a second thread) gains; on the generated walking
clip, identity switches and keypoint drift between detections (extra_info). In a generated crowd (12 people,
a detector that misses and invents some: tests/crowd.py), frames/s and MOT counts at det_every 1 and 10, on
the default runtime and on runtime='auto' (issue #27 item 4)."""
from __future__ import annotations

import time
from itertools import islice

import numpy as np
import pytest

from dwpose_edge.estimator import Estimator
from dwpose_edge.tracking import PoseTracker
from dwpose_edge.train.synth.clip import ClipDetector, render_clip, score_tracking
from dwpose_edge.video import open_source
from tests.crowd import NoisyClipDetector, crowd_clip, mot_counts
from tests.hog_ref.samples import VTEST

FRAMES = 60  # 6 s of vtest.avi (10 frames/s)

needs_vtest = pytest.mark.skipif(not VTEST.exists(), reason=f"{VTEST} absent (apt-get install opencv-doc)")


@pytest.fixture(scope="module")
def est():
    """What a user deploys: the fastest runtime x precision that passes its accuracy gate on this machine
    (measured once and cached); the ratio is (D + P) / (D/N + P), so a slower pose runtime lowers it."""
    return Estimator(runtime="auto", precision="auto")


def _track_vtest(est, det_every: int, pipeline: bool = True) -> dict:
    """Track the first FRAMES frames of vtest.avi, decoding included; frames/s and track statistics."""
    tracker = PoseTracker(est, det_every=det_every, detector="hog", fps=10.0)
    lengths: dict[int, int] = {}
    persons = without_id = 0
    with open_source(VTEST) as src:
        t0 = time.perf_counter()
        for _, result in islice(tracker.track(src, pipeline=pipeline), FRAMES):
            persons += len(result)
            without_id += len(result) - (0 if result.track_ids is None else len(result.track_ids))
            for tid in ([] if result.track_ids is None else result.track_ids.tolist()):
                lengths[tid] = lengths.get(tid, 0) + 1
        elapsed = time.perf_counter() - t0
    return {"fps": FRAMES / elapsed, "persons": persons, "without_id": without_id, "tracks": len(lengths),
            "median_track_length": float(np.median(list(lengths.values()))) if lengths else 0.0}


def _best_of(est, configs: list[tuple[int, bool]], rounds: int) -> dict[tuple[int, bool], dict]:
    """Each (det_every, pipeline) config run `rounds` times, interleaved so that a burst of load on this
    shared machine hits them alike; the fastest run of each is kept (as pytest-benchmark's min)."""
    best: dict[tuple[int, bool], dict] = {}
    for _ in range(rounds):
        for det_every, pipeline in configs:
            run = _track_vtest(est, det_every, pipeline)
            if (det_every, pipeline) not in best or run["fps"] > best[(det_every, pipeline)]["fps"]:
                best[(det_every, pipeline)] = run
    return best


@needs_vtest
def test_det_every_10_vs_every_frame_on_vtest_hog(benchmark, est):
    """The goal (pipelined, as the CLI runs) and what the pipeline gains at N=1 and N=10, from one run."""
    configs = [(1, True), (10, True), (1, False), (10, False)]
    runs = benchmark.pedantic(_best_of, args=(est, configs, 3), rounds=1, iterations=1)
    every_frame, sparse = runs[(1, True)], runs[(10, True)]
    ratio = sparse["fps"] / every_frame["fps"]
    gains = {n: runs[(n, True)]["fps"] / runs[(n, False)]["fps"] for n in (1, 10)}
    benchmark.group = f"tracking vtest.avi {FRAMES} frames, HOG"
    benchmark.extra_info.update({
        **{f"fps_det_every_{n}_{'pipelined' if p else 'serial'}": round(r["fps"], 2) for (n, p), r in runs.items()},
        "speedup_det_every_10": round(ratio, 2),
        "pose_runtime": f"{est.runtime.name}/{getattr(est.runtime, 'precision', 'fp32')}",
        "pipeline_gain_det_every_1": round(gains[1], 3), "pipeline_gain_det_every_10": round(gains[10], 3),
        "tracks_det_every_10": sparse["tracks"], "median_track_length_det_every_10": sparse["median_track_length"],
        "median_track_length_det_every_1": every_frame["median_track_length"],
        "persons_det_every_10": sparse["persons"], "persons_det_every_1": every_frame["persons"]})
    print(f"\nvtest.avi + HOG, {FRAMES} frames, best of 3: det_every=1 {every_frame['fps']:.2f} frames/s "
          f"({every_frame['tracks']} tracks), det_every=10 {sparse['fps']:.2f} frames/s ({sparse['tracks']} tracks, "
          f"median {sparse['median_track_length']:.0f} frames): {ratio:.2f}x; pipeline gain "
          f"{gains[1]:.2f}x at N=1, {gains[10]:.2f}x at N=10")
    for run in runs.values():
        assert run["without_id"] == 0
    assert runs[(10, True)]["persons"] == runs[(10, False)]["persons"] > 0  # same results either way
    assert sparse["median_track_length"] >= 10
    assert ratio >= 4.0, f"goal: det_every=10 >= 4x the frames/s of det_every=1, measured {ratio:.2f}x"


def test_generated_clip_switches_and_drift(benchmark, est):
    """Identity switches and keypoint drift between detections on the generated clip (ground-truth boxes as
    the detector, so that only tracking is measured)."""
    clip = render_clip(seed=0, n_frames=40)

    def run(det_every: int) -> list:
        tracker = PoseTracker(est, det_every=det_every, detector=ClipDetector(clip), fps=clip.fps)
        return [r for _, r in tracker.track(clip.frames)]

    reference = score_tracking(clip, run(1))
    info = {"id_switches_det_every_1": reference.id_switches, "error_px_det_every_1": round(reference.mean_error(), 2)}
    for det_every in (5, 10):
        results = benchmark.pedantic(run, args=(det_every,), rounds=1, iterations=1) if det_every == 10 \
            else run(det_every)
        score = score_tracking(clip, results)
        between = [t for t in range(len(clip.frames)) if t % det_every]
        info.update({f"id_switches_det_every_{det_every}": score.id_switches,
                     f"matched_det_every_{det_every}": score.matched,
                     f"drift_px_det_every_{det_every}": round(score.mean_error(between)
                                                              - reference.mean_error(between), 2)})
    benchmark.group = "tracking, generated clip 40 frames"
    benchmark.extra_info.update(info)
    print("\ngenerated clip:", info)
    assert info["id_switches_det_every_10"] <= 2


def test_crowd_det_every_1_vs_10(benchmark, est):
    """Frames/s and MOT counts (persons per frame, false positives, misses, id switches) at det_every 1 and 10
    on the generated crowd, with onnxruntime fp32 and with runtime='auto' (pose time dominates with a dozen
    people: the speed-up is well under the sparse clip's)."""
    clip = crowd_clip()
    estimators = {"onnxruntime/fp32": Estimator(runtime="onnxruntime"),
                  f"auto ({est.runtime.name}/{getattr(est.runtime, 'precision', 'fp32')})": est}

    def run(estimator, det_every: int) -> tuple[float, dict]:
        tracker = PoseTracker(estimator, det_every=det_every, detector=NoisyClipDetector(clip), fps=clip.fps)
        t0 = time.perf_counter()
        results = [r for _, r in tracker.track(clip.frames)]
        return len(results) / (time.perf_counter() - t0), mot_counts(clip, results).summary()

    def all_runs() -> dict:
        out = {}
        for name, estimator in estimators.items():
            for det_every in (1, 10):
                fps, counts = run(estimator, det_every)
                out[f"{name} det_every={det_every}"] = {"fps": round(fps, 2), **counts}
        return out

    runs = benchmark.pedantic(all_runs, rounds=1, iterations=1)
    benchmark.group = f"tracking, generated crowd {len(clip.frames)} frames"
    benchmark.extra_info.update(runs)
    print("\ngenerated crowd:")
    for name, r in runs.items():
        print(f"  {name}: {r}")
    for name in estimators:
        every, sparse = runs[f"{name} det_every=1"], runs[f"{name} det_every=10"]
        assert sparse["persons_per_frame"] >= 0.85 * every["persons_per_frame"]
        assert sparse["false_positives"] <= every["false_positives"] + 5
