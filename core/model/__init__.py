"""Models: architectures, augmentation, the Trainer and its strategies, the Predictor, keypoint
confidence.

May import: faces, data and the ground floor.
"""
