"""COCO-WholeBody evaluation: annotation reading, the mmpose metric, and its COCOeval backend (no torch)."""
