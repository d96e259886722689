"""How well the review queue's stand-in confidence (flip agreement, facekp.core.quality.review) ranks errors
on the embedded dataset's test people with the shipped model:

- per point: Spearman correlation between (minus) confidence and the point's error, and the
  area under the ROC curve for flagging points more than 3 px off;
- per face: Spearman between (minus) the face's confidence (mean, as the queue uses, and the
  least sure point's) and the face's RMSE.

    python benchmarks/review_confidence.py [--faces N]
    python benchmarks/review_confidence.py --smoke     # seconds: 24 faces (does it still run?)
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from common import add_smoke, parse_args  # this checkout first on the path
from facekp.core.data import dataset as data
from facekp.core.model import metrics
from facekp.core.model.confidence import auroc, spearman
from facekp.core.model.predict import Predictor
from facekp.core.quality import review
from facekp.core.resources import DEFAULT_DATASET, default_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=None,
                        help="the first N faces of the test people (default: all)")
    add_smoke(parser, faces=24)
    args = parse_args(parser, argv)
    from facekp.core.data import opener as _opener  # the embedded dataset as kaggle15
    ds = _opener.load(DEFAULT_DATASET).split("test")
    if args.faces is not None:
        ds = ds.subset(np.arange(min(args.faces, len(ds))))
    predictor = Predictor(default_model())
    truth = ds.keypoints.astype(np.float64)
    pred = predictor.predict(ds.images).astype(np.float64)
    conf = review.flip_confidence(review.flip_disagreement(predictor, ds.images))
    err = metrics.point_errors(truth, pred)
    ok = np.isfinite(err)
    print(f"test faces {len(ds)}, labelled points {ok.sum()}, >3 px off {(err[ok] > 3).sum()}")
    print(f"point: Spearman(-confidence, error) {spearman(-conf[ok], err[ok]):.3f}")
    print(f"point: AUROC for > 3 px off {auroc(err[ok] > 3, -conf[ok]):.3f}")
    face = np.sqrt(np.nanmean((pred - truth) ** 2, axis=1))
    for name, value in (("mean", review.face_confidence(conf)), ("least sure", conf.min(1))):
        print(f"face ({name}): Spearman(-confidence, RMSE) {spearman(-value, face):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
