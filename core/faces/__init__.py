"""Faces in photos: the detectors (MTCNN, Haar), the one framing rule that turns a face into a
96x96 crop for training data and prediction alike, and drawing keypoints.

May import: data and the ground floor.
"""
