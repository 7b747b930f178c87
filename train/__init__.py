"""dwpose_edge.train: COCO-WholeBody data pipeline, SimCC/TPD losses and whole-body evaluation.

- `data`: `WholeBodyDataset`, `AugConfig` (RTMPose train pipeline, SimCC targets)
- `losses`: `KLDiscretLoss`, `FeatureLoss`, `LogitLoss`, `Stage1Loss`, `Stage2Loss`, `distill_weight`
- `evaluate`: `evaluate_estimator`, `evaluate_predictions` (COCOeval from xtcocotools or xthotcoco: `evaluator`)
"""
