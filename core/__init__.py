"""facekp's core: everything that is not a screen; it never imports Qt.

Rooms follow a face's journey, each importing only the rooms below it (a test walks the
imports and fails on an arrow up or a circle):

    cli        the ``facekp`` command and its subcommands
    photos     quality      side by side: photos and videos in, results out | scores, review,
    compare model      architectures, augmentation, Trainer, strategies, Predictor, confidence,
    metrics faces      detectors, the one framing rule, drawing keypoints
    data       keypoint sets, Dataset (.npz, Kaggle CSV, TFRecord shards), export formats
    errors, fileio, parallel, progress, resources      the ground floor every room may use
"""
