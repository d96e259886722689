"""Shared fixtures. Real data: the embedded dataset and ../shared/data."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real faces and Kaggle files); present in development and CI."""
    assert SHARED_DATA.is_dir(), f"real data expected at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(scope="session")
def faces():
    """The embedded dataset (3,869 real faces, split by person)."""
    from core import data
    from core.resources import DEFAULT_DATASET

    return data.read_npz(DEFAULT_DATASET)


@pytest.fixture(scope="session")
def small_faces(faces):
    """A small real subset for fast training tests: 256 train faces, 64 val faces."""
    rng = np.random.default_rng(0)
    train = np.flatnonzero(faces.splits == "train")
    val = np.flatnonzero(faces.splits == "val")
    idx = np.concatenate([rng.choice(train, 256, replace=False), rng.choice(val, 64, replace=False)])
    return faces.subset(np.sort(idx))
