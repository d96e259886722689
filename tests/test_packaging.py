"""The installed names: facekp.core, facekp.gui and facekp.resources, never a bare top-level
"core", "gui" or "resources" that another distribution could also install."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import facekp.core

ROOT = Path(__file__).resolve().parent.parent


def test_another_distributions_core_and_gui_do_not_shadow_ours(tmp_path):
    """Packages named core, gui and resources from elsewhere, first on the path, change nothing:
    facekp imports its own, and theirs stay importable by their own names."""
    site = tmp_path / "site"
    for name in ("core", "gui", "resources"):
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text(f"OWNER = 'another distribution ({name})'\n")
    code = ("import core, gui, facekp.core.data.keypoints as k, facekp.gui.session, facekp.resources; "
            "import facekp.core.resources as r; "
            "print(core.OWNER, gui.OWNER, k.NAMES[0], r.DEFAULT_DATASET.name)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["another", "distribution", "(core)", "another",
                                  "distribution", "(gui)", "left_eye_center", "faces.npz"]


def test_the_shipped_files_sit_beside_the_code_in_either_layout():
    """core/ finds resources/ as its sibling: core/ and resources/ at the checkout's top, or
    facekp/core and facekp/resources in an installed wheel."""
    import facekp.core.resources as r

    core_dir = Path(facekp.core.__file__).resolve().parent
    assert core_dir.name == "core"
    assert r.DEFAULT_DATASET == core_dir.parent / "resources" / "faces.npz"
    assert r.DEFAULT_DATASET.is_file() and r.default_model() is not None
