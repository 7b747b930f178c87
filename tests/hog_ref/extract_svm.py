"""Write OpenCV 4.x's default people detector (Dalal-Triggs HOG + linear SVM) to a .npy file.

Run with an OpenCV 4.x python (the project's .venv pins opencv-python-headless<5):
    .venv/bin/python tests/hog_ref/extract_svm.py dwpose_edge/data/hog_people_svm.npy
The coefficients come from cv2.HOGDescriptor_getDefaultPeopleDetector() (OpenCV, BSD-3/Apache-2.0):
3780 weights for a 64x128 window (9 bins, 8x8 cells, 16x16 blocks, stride 8) followed by the bias.
"""
import sys

import cv2
import numpy as np

svm = np.asarray(cv2.HOGDescriptor_getDefaultPeopleDetector(), dtype=np.float32).reshape(-1)
assert svm.shape == (3781,), svm.shape
np.save(sys.argv[1], svm)
print(f"wrote {sys.argv[1]}: {svm.size} float32 from OpenCV {cv2.__version__}, bias {svm[-1]:.6f}")
