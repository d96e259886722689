"""One figure, one definition, one name wherever the app shows it; texts that say what they
mean; the loss plot's axes and legend; the dataset table's order and names. Real widgets,
offscreen; real faces; the shipped model or models trained for one epoch on a few faces."""
from __future__ import annotations

import re

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("gui_settings")


@pytest.fixture(scope="module")
def tiny(real_subset_npz):
    """24 real train faces + 12 validation + 4 test faces, as an .npz."""
    return real_subset_npz("gui-figures", train=24, val=12, test=4, seed=7)


def wait_idle(qtbot, window, timeout=120_000):
    qtbot.waitUntil(lambda: not window.busy and window.session.all_predicted(),
                    timeout=timeout)


# --- 8: one definition per figure ------------------------------------------------------------

def test_a_points_error_is_its_distance_in_px_in_the_hover_and_the_dock(qtbot, tiny,
                                                                       open_window):
    window = open_window(qtbot, data=str(tiny))
    wait_idle(qtbot, window)
    window.select_row(3)
    s, view = window.session, window.kp_view
    for k in range(15):
        hover = window.canvas.describe_point(k, "truth")
        shown = re.search(r"error ([\d.]+) px", hover)
        if shown:
            assert view.item(k, 1).text() == shown.group(1), (k, hover)
    truth = s.dataset.keypoints.reshape(-1, 15, 2)
    pred = s.predictions.reshape(-1, 15, 2)
    distance = np.hypot(*(pred - truth).transpose(2, 0, 1))
    np.testing.assert_allclose(view.current, distance[3], rtol=1e-6)
    np.testing.assert_allclose(view.split_values, np.nanmean(distance, axis=0), rtol=1e-6)
    assert "distance in px" in view.horizontalHeaderItem(1).toolTip()
    assert "distance in px" in view.horizontalHeaderItem(2).toolTip()


def test_a_models_validation_rmse_is_the_same_in_the_dialog_and_the_models_dock(
        qtbot, tiny, one_epoch_model, open_window):
    loaded = one_epoch_model(tiny, "figures-a", batch_size=12)
    new = one_epoch_model(tiny, "figures-b", batch_size=8)
    window = open_window(qtbot, data=str(tiny), model=str(loaded))
    wait_idle(qtbot, window)
    asked = []
    window.ask_switch_model = lambda text: asked.append(text) or False
    window.model_list.opened.append(new)
    window.model_list.refresh()
    window.models.trained(str(new))
    qtbot.waitUntil(lambda: bool(asked) and not window.busy, timeout=120_000)
    dock = {window.model_list.table.item(r, 0).text(): window.model_list.table.item(r, 4).text()
            for r in range(window.model_list.table.rowCount())}
    new_px, old_px = re.findall(r"has (?:validation RMSE )?([\d.]+) px", asked[0])
    assert (new_px, old_px) == (dock[new.name], dock[loaded.name]), (asked[0], dock)
    assert "one pass" in asked[0]
    assert "one pass" in window.model_list.table.horizontalHeaderItem(4).toolTip()
