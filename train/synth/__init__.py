"""Procedural whole-body data: articulated 3D people ray-cast over real and procedural backgrounds,
annotated in COCO-WholeBody format (133 keypoints with depth-tested visibility).

    from dwpose_edge.train.synth import make_dataset

    if __name__ == "__main__":  # worker processes re-import the calling script (forkserver)
        json_path = make_dataset("out/synth", n_images=5000, seed=0)
"""
from __future__ import annotations

from .coco import CATEGORIES, make_dataset, render_one
from .scene import render_scene

__all__ = ["CATEGORIES", "make_dataset", "render_one", "render_scene"]
