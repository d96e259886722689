"""Data: the keypoint set, datasets of 96x96 faces (.npz, Kaggle CSV, TFRecord shards) and the
standard annotation formats they are exported to and imported from.

May import: the ground floor (errors, fileio, progress, resources). Nothing above.
"""
