"""`python -m framework.predict RUN_ID_OR_FOLDER DATA.csv [--out predictions.csv] [--uri URI] [--plugins DIR]`.

Predicts for every row of DATA.csv with a trained model (`framework.load`): raw features, as in the
training data (the model standardizes them as training did). The feature columns are found by
name only (extra columns, such as the target, are ignored; a missing one is an error); a model
without feature names (trained on an .npz) takes a file of exactly its feature count, in order.
Output CSV, one row per input row: `class` and `p_<label>` per class for classification,
`prediction` (or `prediction_<j>` for several targets) for regression; stdout without `--out`.

RUN_ID_OR_FOLDER may also be a registered model, `models:/NAME@best` (`tracking.register_model=NAME`) or
`models:/NAME/VERSION`: the registry names the run whose weights are used.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from framework.engine.data import csv_columns, read_csv
from framework.errors import ConfigError, FrameworkError
from framework.inference import TrainedModel, load


def features_of(model: TrainedModel, path: str, delimiter: str = ",") -> np.ndarray:
    """X (n, features) float64 from a CSV: the model's feature columns by name (never by position when
    the model knows their names), else all columns in order."""
    header, rows = read_csv(path, delimiter)
    if model.features:
        missing = [c for c in model.features if c not in header]
        if missing:
            unexpected = [c for c in header if c not in model.features]
            raise ConfigError(f"data file '{Path(path).name}' lacks the model's column(s) {_few(missing)}; "
                              f"unexpected: {_few(unexpected) or '(none)'}")
        columns = model.features
    elif len(header) == model.n_features:
        columns = header
    else:
        raise ConfigError(f"data file '{Path(path).name}' has {len(header)} columns; the model (no feature names) "
                          f"takes exactly {model.n_features}, in training order")
    return csv_columns(path, header, rows, columns)


def _few(names: list[str], shown: int = 4) -> str:
    """Up to `shown` names, then how many more (a message stays one short line)."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(n[:24] for n in names[:shown]) + more


def table(model: TrainedModel, X: np.ndarray) -> tuple[list[str], list[list]]:
    """(header, rows) of the predictions for X."""
    if model.task == "regression":
        values = model.predict(X)
        header = ["prediction"] if values.shape[1] == 1 else [f"prediction_{j}" for j in range(values.shape[1])]
        return header, values.tolist()
    proba = model.predict_proba(X)
    labels = model.labels(proba)
    header = ["class", *(f"p_{c}" for c in model.classes)]
    return header, [[label, *row] for label, row in zip(labels.tolist(), proba.tolist())]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m framework.predict", description=__doc__.split("\n\n")[1])
    parser.add_argument("source", metavar="RUN_ID_OR_FOLDER",
                        help="an MLflow run id (or its first characters), models:/NAME@ALIAS, or a folder with "
                             "weights.npz + config.yaml (an artifact folder, or a Hydra run folder)")
    parser.add_argument("data", metavar="DATA.csv", help="rows to predict, with a header row")
    parser.add_argument("--out", metavar="FILE", help="write the predictions here (default: stdout)")
    parser.add_argument("--uri", help="MLflow store to look the run id up in (default: the project's)")
    parser.add_argument("--plugins", action="append", metavar="DIR", default=[],
                        help="a folder (or .py file) of user plugins the model needs; repeatable. The model's "
                             "own config never makes anything import")
    parser.add_argument("--delimiter", default=",", help="of DATA.csv (default: %(default)r)")
    args = parser.parse_args(argv)
    try:
        source = args.source
        if source.startswith("models:/"):  # the model registry's name for a run's model
            from framework.tracking import store_uri
            from framework.tracking.mlmodel import run_of

            source = run_of(source, store_uri(args.uri))
        model = load(source, args.uri, args.plugins)
        header, rows = table(model, features_of(model, args.data, args.delimiter))
    except (FrameworkError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    with open(args.out, "w", newline="") if args.out else open(sys.stdout.fileno(), "w", closefd=False) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    if args.out:
        print(f"wrote {len(rows)} predictions to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
