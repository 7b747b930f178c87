"""COCO-WholeBody skeleton as data: limb pairs and colours per part."""
from __future__ import annotations

BODY_LIMBS = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
              (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)]
FEET_LIMBS = [(15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22)]
_HAND = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11), (11, 12),
         (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]
LEFT_HAND_LIMBS = [(9, 91)] + [(91 + a, 91 + b) for a, b in _HAND]
RIGHT_HAND_LIMBS = [(10, 112)] + [(112 + a, 112 + b) for a, b in _HAND]

# BGR colours per part
PART_COLORS = {
    "body": (0, 200, 255),
    "feet": (255, 128, 0),
    "face": (255, 255, 255),
    "left_hand": (0, 255, 0),
    "right_hand": (255, 0, 255),
}
LIMBS = {"body": BODY_LIMBS, "feet": FEET_LIMBS, "left_hand": LEFT_HAND_LIMBS, "right_hand": RIGHT_HAND_LIMBS}
