"""pytest-benchmark: the offline HOG people detector, OpenCV 4's HOGDescriptor path vs our numpy path,
one thread, on a 640x480 image (`pytest bench/benchmarks/test_bench_hog.py`). Their boxes are equal
(tests/test_hog.py); which is faster decides `backend="auto"` (dwpose_edge/hog.py's figures)."""
from __future__ import annotations

import cv2
import pytest

from dwpose_edge.data import DATA_DIR
from dwpose_edge.detectors import HogDetector
from dwpose_edge.detectors.hog import opencv_has_hog


@pytest.mark.parametrize("backend", ["opencv", "numpy"])
def test_hog_detect_640x480_one_thread(benchmark, backend):
    if backend == "opencv" and not opencv_has_hog():
        pytest.skip(f"OpenCV {cv2.__version__} has no HOGDescriptor (OpenCV 5): only the numpy path runs")
    image = cv2.resize(cv2.imread(str(DATA_DIR / "astronaut.jpg")), (640, 480))
    det = HogDetector(backend=backend)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        benchmark.group = "hog 640x480, 1 thread"
        boxes, scores = benchmark(det.detect, image)
    finally:
        cv2.setNumThreads(threads)
    assert len(boxes) == len(scores)
