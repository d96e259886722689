"""Quality: evaluation (RMSE, per keypoint and per face), review queues, comparing two models,
model cards, Kaggle submissions.

May import: model, faces, data and the ground floor (not photos, which stands beside it).
"""
