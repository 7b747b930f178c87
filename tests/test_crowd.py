"""PoseTracker in a crowd (issue #27 item 4): a generated clip of 12 people with known identities, a detector that
misses and invents people as a real one does, and MOT counts (persons per frame, false positives, misses,
identity switches) at det_every=1 and 10; the tracker's rule for tracks with neither detection nor pose on
hand-made cases."""
from __future__ import annotations

import numpy as np
import pytest

from crowd import NoisyClipDetector, crowd_clip, mot_counts
from dwpose_edge.estimator import Estimator
from dwpose_edge.result import PoseResult
from dwpose_edge.tracking import PoseTracker


@pytest.fixture(scope="module")
def clip():
    return crowd_clip()  # 3 groups of 4 crossing people, 960x360, 40 frames (~8 s to render)


@pytest.fixture(scope="module")
def runs(clip):
    est = Estimator(runtime="onnxruntime")
    out = {}
    for det_every in (1, 10):
        tracker = PoseTracker(est, det_every=det_every, detector=NoisyClipDetector(clip), fps=clip.fps)
        results = [r for _, r in tracker.track(clip.frames)]
        out[det_every] = (results, mot_counts(clip, results))
    return out


def test_crowd_clip_and_detector(clip):
    assert len(clip.frames) == 40 and clip.frames[0].shape == (360, 960, 3) and clip.keypoints.shape[1] == 12
    assert 10 <= clip.present().sum(1).mean() <= 12
    det = NoisyClipDetector(clip)
    boxes = [det.detect(f)[0] for f in clip.frames]
    again = NoisyClipDetector(clip)
    assert all(np.array_equal(b, again.detect(f)[0]) for b, f in zip(boxes, clip.frames))  # same errors every run
    per_frame = np.mean([len(b) for b in boxes])
    assert 8 <= per_frame <= 11  # 15% of the ~11.5 visible people missed, a background box in 30% of frames
    assert len(det.detect(np.zeros((8, 8, 3), np.uint8))[0]) == 0


def test_mot_counter_on_hand_made_results(clip):
    """The ground truth as output (people whose body keypoints are all in view): nothing extra, no switch, a miss
    only for each person to find that was left out; then at one frame a person dropped, one invented, and two
    ids exchanged on the next frame, each counted where it happens."""
    present = clip.present()
    whole = (clip.visible[:, :, :23] > 0).all(2) & present
    required = (clip.visible[:, :, :17] == 2).sum(2) >= 6

    def result(t, people, ids=None):
        n = len(people)
        return PoseResult(clip.keypoints[t, people].astype(np.float32).reshape(n, 133, 2),
                          np.ones((n, 133), np.float32), np.zeros((n, 4), np.float32),
                          np.asarray(people if ids is None else ids, np.int64))

    truth = [result(t, np.flatnonzero(whole[t])) for t in range(len(clip.frames))]
    perfect = mot_counts(clip, truth)
    assert sum(perfect.false_positives) == 0 and sum(perfect.id_switches) == 0
    assert perfect.misses == (required & present & ~whole).sum(1).tolist()
    assert perfect.to_find == (required & present).sum(1).tolist()
    t = 5
    people = np.flatnonzero(whole[t] & whole[t + 1] & required[t] & required[t + 1])
    assert len(people) >= 3
    spoiled = list(truth)
    invented = truth[t].keypoints[:1] * 0 + 5.0  # a pose in the corner: nobody there
    kept = np.flatnonzero(whole[t])[np.flatnonzero(whole[t]) != people[0]]
    spoiled[t] = PoseResult(np.concatenate([clip.keypoints[t, kept].astype(np.float32), invented]),
                            np.ones((len(kept) + 1, 133), np.float32), np.zeros((len(kept) + 1, 4), np.float32),
                            np.asarray(list(kept) + [99], np.int64))
    ids = np.flatnonzero(whole[t + 1]).copy()
    a, b = (np.flatnonzero(np.isin(ids, people[1:3])))
    ids[[a, b]] = ids[[b, a]]
    spoiled[t + 1] = result(t + 1, np.flatnonzero(whole[t + 1]), ids)
    counts = mot_counts(clip, spoiled)
    assert counts.false_positives[t] == 1 and counts.misses[t] == perfect.misses[t] + 1
    assert counts.persons[t] == perfect.persons[t]
    assert counts.id_switches[t + 1] == 2  # people 1 and 2 exchanged ids (person 0 was unseen at t: no switch)
    assert counts.id_switches[t + 2] == 2  # both back to their own
    assert sum(counts.id_switches) == 4 and sum(counts.false_positives) == 1


def test_det_every_10_in_a_crowd_shows_as_many_persons_as_every_frame(runs):
    """Measured (onnxruntime fp32, this x86 CPU): det_every=1: 11.8 persons per frame, 20 false positives,
    11 misses, 4 id switches (MOTA 0.92); det_every=10: 10.5 persons per frame, 17 false positives, 60 misses,
    6 id switches (MOTA 0.82). Before the fix: det_every=1 12.3 persons, 36 false positives, 10 misses;
    det_every=10 9.5 persons, 45 false positives, 129 misses. From frame 10 (after the first detection round: a
    person the first detection misses waits 10 frames, a start-up a long clip amortises) 10.7 against 11.6."""
    (every, c1), (sparse, c10) = runs[1], runs[10]
    print("\ndet_every=1:", c1.summary(), "\ndet_every=10:", c10.summary())
    steady1, steady10 = np.mean(c1.persons[10:]), np.mean(c10.persons[10:])
    assert 0.9 <= steady10 / steady1 <= 1.1, (steady1, steady10)
    assert 0.85 <= c10.per_frame("persons") / c1.per_frame("persons") <= 1.1
    assert sum(c10.false_positives) <= sum(c1.false_positives) + 5
    assert sum(c1.false_positives) <= 30  # 36 before: empty tracks were shown for 2 more frames
    assert sum(c10.id_switches) <= 10 and sum(c1.id_switches) <= 10
    assert sum(c10.misses) <= 80 and c10.mota() >= 0.75
    # between detections every shown person has a confident pose (at least 4 of 23 body keypoints >= 0.3)
    for t, r in enumerate(sparse):
        if t % 10:
            assert ((r.scores[:, :23] >= 0.3).sum(1) >= 4).all(), t


class _FakeEstimator:
    """Poses without a model: a confident standing pose in boxes left of x=100, nothing confident elsewhere."""

    detector = None

    def __call__(self, image, boxes):
        boxes = np.asarray(boxes, np.float32)
        k = np.zeros((len(boxes), 133, 2), np.float32)
        s = np.zeros((len(boxes), 133), np.float32)
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            k[i, :, 0] = np.linspace(x1 + 0.2 * (x2 - x1), x2 - 0.2 * (x2 - x1), 133)
            k[i, :, 1] = np.linspace(y1 + 0.1 * (y2 - y1), y2 - 0.1 * (y2 - y1), 133)
            s[i] = 0.9 if (x1 + x2) / 2 < 100 else 0.05
        return PoseResult(k, s, boxes)


class _Boxes:
    def __init__(self, boxes):
        self.boxes = np.asarray(boxes, np.float32)

    def detect(self, image):
        return self.boxes, np.ones(len(self.boxes), np.float32)


def test_a_track_without_detection_or_confident_pose_is_hidden_at_once_and_kept():
    image = np.zeros((200, 300, 3), np.uint8)
    tracker = PoseTracker(_FakeEstimator(), det_every=10, detector=_Boxes([[20, 20, 80, 180], [180, 20, 240, 180]]))
    first = tracker(image)  # both hold a detection: shown, the empty one too (as at det_every=1)
    assert first.track_ids.tolist() == [0, 1]
    second = tracker(image)  # no detection: the track with no confident keypoint is hidden at once
    assert second.track_ids.tolist() == [0]
    kept = {trk.track_id: trk for trk in tracker.tracks}
    assert set(kept) == {0, 1} and kept[1].lost > 0  # kept hidden, for a detection to bring it back
    for _ in range(8):
        assert tracker(image).track_ids.tolist() == [0]
    again = tracker(image)  # frame 10: detected again, it shows with its id
    assert again.track_ids.tolist() == [0, 1]
