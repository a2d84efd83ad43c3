"""The MLflow pyfunc model of a trained run, as "models from code": MLflow runs this file when it loads the
model (`mlflow.pyfunc.load_model`, `mlflow models serve`), so nothing is pickled and the model loads with
MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false. Its artifacts are the run's `weights` (weights.npz: parameters
and input pipeline) and `config` (config.yaml); `framework.inference.from_files` rebuilds the model (built-in
plugins only) and `predict` answers as `python -m framework.predict` does: a DataFrame with `class` and
`p_<label>` per class (classification), or `prediction` / `prediction_<j>` (regression), one row per input
row of raw features (named columns, or the features in training order).
"""
from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class FrameworkModel(PythonModel):
    def load_context(self, context) -> None:
        from framework.inference import from_files

        self.model = from_files(Path(context.artifacts["weights"]), Path(context.artifacts["config"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """`model_input`: a DataFrame (named columns: the model's features are picked by name) or, for a tensor
        signature, an (n, features) array. (A DataFrame type hint makes MLflow check nothing by it: the
        signature does.)"""
        from framework.predict import table

        X = model_input
        if isinstance(X, pd.DataFrame):
            names = self.model.features
            X = X[names] if names and set(names) <= set(X.columns) else X
            X = X.to_numpy(dtype=np.float64)
        header, rows = table(self.model, np.asarray(X, dtype=np.float64))
        return pd.DataFrame(rows, columns=header)


mlflow.models.set_model(FrameworkModel())
