"""The model side of the window: loading a model, predicting the dataset in chunks (the faces
the table shows first), and comparing a newly trained model with the loaded one."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .workers import Job

PREDICT_CHUNK = 256


#: What "validation RMSE" means wherever the app shows a model's (the Training dock, the
#: Models dock, the question after training): one pass of the model over the validation
#: faces, every labelled coordinate, as training measures it and its record keeps it (the
#: app's own predictions also average each face with its mirror image, a little lower).
VALIDATION_RMSE = ("one pass of the model over the validation faces, every labelled "
                   "coordinate, as training measures it")


def validation_rmse(predictor, faces) -> float:
    """A model's validation RMSE in px (:data:`VALIDATION_RMSE`): ``predictor``'s model
    without the mirror-image average, over every labelled coordinate of ``faces``."""
    from facekp.core.data.keypoint_sets import derivable
    from facekp.core.model.metrics import rmse
    from facekp.core.model.predict import Predictor

    kset = predictor.keypoint_set
    if not derivable(faces.keypoint_set, kset):   # a model of another set: no figure here
        return float("nan")
    one_pass = Predictor(predictor.model, flip_average=False, confidence=None,
                         keypoint_set=kset)
    return rmse(one_pass.predict(faces.images), faces.in_set(kset).keypoints)


def compare_models(old, new_path: Path, faces) -> tuple[object, float, float]:
    """(new Predictor, validation RMSE px of the loaded model, of the new one) on ``faces``."""
    from facekp.core.model.predict import Predictor

    new = Predictor(new_path)
    return new, validation_rmse(old, faces), validation_rmse(new, faces)


class Models:
    """The engine's news (TensorFlow ready or not), model loading and predictions for one
    window."""

    def __init__(self, window):
        self.window = window
        self._remaining = self._total = self._done = 0
        self._pending: tuple[int, set] = (-1, set())  # (generation, faces asked for alone)

    def load(self, path: str | Path, chosen: bool = True) -> None:
        """Load a .keras model in the engine; predictions refresh when it is ready.
        ``chosen``: the person chose it (it stays whatever dataset is opened); False for the
        shipped model the app picks for a dataset's keypoint set."""
        w = self.window
        path = Path(path)
        self.chosen = chosen
        if w.engine_info is None:
            w.options.model = str(path)  # picked up when the engine is ready
            return
        w.engine_label.setText(f"Loading model {path.name}…")

        def job():
            from facekp.core.model.predict import Predictor
            predictor = Predictor(path)  # the dataset's figures: the Keras model's own
            predictor.for_photos().warm_up()  # photos' fast form now, not on the first photo
            return predictor

        w.jobs.submit(Job("model", job, on_done=lambda p: self.use(path, p),
                          on_failed=self._failed, priority=Job.NOW))

    def _failed(self, message: str) -> None:
        self.update_state()
        self.window.show_error(f"Could not load the model: {message}")

    def use(self, path: Path, predictor) -> None:
        """Make ``predictor`` the window's model: predictions start again with it."""
        w = self.window
        w.predictor, w.model_path = predictor, Path(path)
        w.jobs.engine.new_generation()  # pending predictions of the old model are dropped
        w.session.set_model_set(predictor.keypoint_set)   # (predictions cleared)
        w.datasets.follow_set()
        if w.session.dataset is not None:
            w.dataset_panel.set_errors(w.session.errors)
        self.update_state()
        if self.follow_dataset():      # a shipped model of the dataset's own set comes next
            return
        if w.session.model_problem:
            w.show_error(w.session.model_problem)
        else:
            w.statusBar().showMessage(f"Model {w.model_path.name} loaded", 5000)
        w.files.add_recent(w.model_path)
        w.modelChanged.emit(w.model_path)
        if w.session.view_mode == "photo" and w.session.photo is not None:
            w.photos.predict()
        self.predict_dataset()

    # --- the engine ---------------------------------------------------------------------
    def engine_status(self, text: str) -> None:
        w = self.window
        w.engine_label.setText(text)
        w.statusBar().showMessage(text)

    def engine_ready(self, info: dict) -> None:
        """TensorFlow is loaded: the panel learns the architectures; the model loads."""
        w = self.window
        w.engine_info = info
        w.training_panel.set_engine_info(info)
        w.engine_label.setText(f"TensorFlow {info['tensorflow']} ready")
        path = w.options.model or self.shipped_for_dataset()
        if path is not None and not info.get("prediction"):
            self.load(path, chosen=bool(w.options.model))
        else:
            self.update_state()
            if info.get("prediction"):
                w.statusBar().showMessage(info["prediction"], 10000)
        w.set_loading("engine", False)

    def shipped_for_dataset(self) -> Path | None:
        """The shipped model of the dataset's keypoint set (``ibug68.keras`` for ibug68 faces),
        else the shipped default (kaggle15), else None."""
        from facekp.core.resources import default_model, shipped_model

        s = self.window.session
        own = shipped_model(s.keypoint_set.name) if s.dataset is not None else None
        return own or default_model()

    def follow_dataset(self) -> bool:
        """A dataset was shown: when the loaded model is a shipped one of another keypoint
        set and a shipped model of the dataset's set exists, load that one instead (a model
        the person chose stays). True when a model is being loaded."""
        from facekp.core.resources import SHIPPED_MODELS

        w = self.window
        if w.model_path is None or w.predictor is None or w.session.dataset is None or \
                getattr(self, "chosen", False):
            return False
        shipped = {p.resolve() for p in SHIPPED_MODELS.values() if p.exists()}
        better = self.shipped_for_dataset()
        if Path(w.model_path).resolve() in shipped and better is not None and \
                better.resolve() != Path(w.model_path).resolve() and \
                w.predictor.keypoint_set != w.session.keypoint_set:
            w.statusBar().showMessage(f"Loading the shipped {w.session.keypoint_set.name} model "
                                      "for these faces…")
            self.load(better, chosen=False)
            return True
        return False

    def engine_failed(self, message: str) -> None:
        w = self.window
        w.engine_failed = True
        w.engine_label.setText("TensorFlow unavailable")
        w.show_error(f"TensorFlow could not be loaded: {message}. Datasets and photos still "
                     "open; prediction and training are off.")
        w.update_enabled()
        w.set_loading("engine", False)

    def update_state(self) -> None:
        w = self.window
        if w.predictor is not None:
            w.engine_label.setText(f"Model: {w.model_path.name}")
            w.engine_label.setToolTip(str(w.model_path))
        elif w.engine_info is not None:
            w.engine_label.setText("No model: ground truth only — train one in the "
                                   "Training panel or open a .keras file")
            w.engine_label.setToolTip("")
        w.update_enabled()

    # --- dataset predictions ----------------------------------------------------------------
    def predict_dataset(self, only_missing: bool = False) -> None:
        """Predict every face (``only_missing``: those without a prediction, e.g. faces just
        added), in chunks, the faces the table shows first."""
        w, s = self.window, self.window.session
        if w.predictor is None or not len(s) or s.model_problem:
            return
        visible = np.asarray(w.dataset_panel.visible_rows(), dtype=int)
        rest = np.ones(len(s), bool)
        rest[visible] = False
        order = np.concatenate([visible, np.flatnonzero(rest)])
        if only_missing:         # the current predictions stay: so do those asked for
            generation = w.jobs.engine.generation
            asked = self._pending[1] if self._pending[0] == generation else set()
            order = order[np.isnan(s.predictions[order]).all(axis=1)
                          & ~np.isin(order, list(asked))]
            if not len(order):
                return w.update_keypoint_errors()
        else:
            generation = w.jobs.engine.new_generation()
        if s.row is not None and (order == s.row).any():
            self.predict_rows([s.row], generation)      # the face on screen first, alone
            order = order[order != s.row]
        n = len(order)
        chunks = [order[i:i + PREDICT_CHUNK] for i in range(0, n, PREDICT_CHUNK)]
        self._remaining, self._total, self._done = len(chunks), n, 0
        w.dataset_panel.set_progress(0, n)
        for rows in chunks:
            self.predict_rows(rows, generation, chunk=True)

    def predict_rows(self, rows, generation: int | None = None, chunk: bool = False) -> None:
        w = self.window
        if w.session.model_problem:       # a model of a set this dataset cannot be scored in
            return
        rows = np.asarray(rows, dtype=int)
        predictor, images = w.predictor, w.session.dataset.images
        generation = w.jobs.engine.generation if generation is None else generation
        if self._pending[0] != generation:
            self._pending = (generation, set())
        if not chunk:   # a face on screen asked for alone in this generation: once
            asked = self._pending[1]
            rows = np.asarray([r for r in rows.tolist() if r not in asked], dtype=int)
            if not len(rows):
                return
            asked.update(rows.tolist())
        on_done = self._chunk_done if chunk else self.store
        w.jobs.submit(Job("predict", lambda: (rows, predictor.predict(images[rows])),
                          on_done=lambda r: on_done(*r), on_failed=self._predict_failed,
                          priority=Job.BACKGROUND if chunk else Job.NOW,
                          generation=generation))

    def _predict_failed(self, message: str) -> None:
        self.window.dataset_panel.set_progress(1, 1)
        self.window.show_error(f"Prediction failed: {message}")

    def _chunk_done(self, rows, preds) -> None:
        w = self.window
        self.store(rows, preds)
        self._remaining -= 1
        self._done += len(rows)
        w.dataset_panel.set_progress(self._done, self._total)
        if self._remaining > 0:
            return
        w.dataset_panel.set_progress(1, 1)
        w.update_keypoint_errors(split_changed=True)
        e = w.session.predicted_errors()
        if len(e) and w.session.view_mode == "dataset":   # a photo's own message stays
            w.statusBar().showMessage(
                f"Predicted {self._total} faces: mean per-face RMSE {e.mean():.2f} px (sort by "
                "RMSE to see the worst first)", 8000)

    def store(self, rows, preds) -> None:
        w, s = self.window, self.window.session
        if s.dataset is None or s.predictions is None:
            return
        s.store_predictions(rows, preds)
        w.dataset_panel.set_errors(s.errors)
        w.review.update_panel()              # how far the predictions a queue waits for are
        if s.row is not None and s.row in set(int(r) for r in rows) and s.view_mode == "dataset":
            w.canvas.set_prediction(s.predictions[s.row])
            w.update_keypoint_errors()

    # --- a model trained in the app ------------------------------------------------------
    def trained(self, path: str) -> None:
        """Training left a model: with none loaded it is used; otherwise the loaded model
        stays unless the person chooses the new one after seeing both on validation faces."""
        w = self.window
        path = Path(path)
        if w.predictor is None:
            w.statusBar().showMessage(f"Training done: loading the new model {path.name}…")
            self.load(path)
            return
        faces = w.session.validation_faces()
        if faces is None:
            return
        old_name = w.model_path.name if w.model_path else "the loaded model"
        w.statusBar().showMessage(f"Training done: comparing {path.name} with {old_name}…")
        w.jobs.submit(Job("compare", lambda old=w.predictor: compare_models(old, path, faces),
                          on_done=lambda r: self._compared(path, old_name, len(faces), *r),
                          on_failed=w.show_error, priority=Job.NOW))

    def _compared(self, path: Path, old_name: str, n: int, new, old_px, new_px) -> None:
        w = self.window
        verdict = "better" if new_px < old_px else "not better"
        text = (f"On the {n} validation faces of {w.session.label}, the new model {path.name} "
                f"has validation RMSE {new_px:.2f} px; the loaded model {old_name} has "
                f"{old_px:.2f} px ({verdict}). Validation RMSE here and in the Training and "
                f"Models docks: {VALIDATION_RMSE}.")
        if w.ask_switch_model(text + " Switch to the new model?"):
            self.use(path, new)
        else:
            # (the question's whole text does not fit a status bar: the figures do)
            w.statusBar().showMessage(
                f"Kept {old_name}: validation RMSE {old_px:.2f} px, the new {path.name} "
                f"{new_px:.2f} px ({verdict}; {n} validation faces)", 15000)
