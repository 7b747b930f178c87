"""Real sample media from Debian's opencv-doc (`apt-get install opencv-doc`), shared by tests/test_hog.py
and compare_paths.py; absent files are simply left out."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")
VTEST = OPENCV_DOC / "vtest.avi"  # OpenCV's pedestrian sample video, 768x576


def vtest_frames(indices: Iterable[int]) -> dict[int, np.ndarray]:
    """Frames of vtest.avi by index; a frame that cannot be read (no file, no video backend) is absent."""
    frames: dict[int, np.ndarray] = {}
    if not VTEST.exists():
        return frames
    cap = cv2.VideoCapture(str(VTEST))
    try:
        for index in indices:
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = cap.read()
            if ok:
                frames[index] = frame
    finally:
        cap.release()
    return frames
