"""A run's MLflow model, data sets and registry entry, made by the sync process from the run log (imports mlflow).

- `log_datasets`: the `DataSets` record as three MLflow dataset inputs (contexts training / validation /
  testing): digest = the first `DIGEST_CHARS` hex digits of the split's sha256 (MLflow keeps <= 36; the
  whole one is in the profile), source = the CSV file (path, sha256) or the registered data set (name,
  arguments), schema = the raw feature columns and the targets, profile = shapes.
- `log_model`: a FINISHED run's pyfunc model from code (`framework.tracking.pyfunc_model`, no pickle) named
  `MODEL`, with weights.npz and config.yaml as its artifacts, an input example and signature in the raw
  feature columns (named columns where the data names them), and pip requirements that install this
  package from the source tree it was trained with. Logged once per run (a re-sent End finds it).
- `register`: the run's model as a new version of a registered model, with alias `ALIAS`.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from framework.engine.weights import CONFIG, WEIGHTS
from framework.errors import FrameworkError
from framework.tracking.messages import DataSets

log = logging.getLogger(__name__)
MODEL, ALIAS = "model", "best"
DIGEST_CHARS = 16
CODE = Path(__file__).with_name("pyfunc_model.py")  # the model's code (models from code)
CONTEXTS = {"train": "training", "val": "validation", "test": "testing"}  # split (and metric prefix) -> context


def _input_schema(record: DataSets):
    """The model's input: named double columns, or a (-1, features) float64 tensor for unnamed features."""
    import numpy as np
    from mlflow.types import ColSpec, Schema, TensorSpec

    if record.features:
        return Schema([ColSpec("double", name) for name in record.features])
    return Schema([TensorSpec(np.dtype("float64"), (-1, len(record.example[0])))])


def example_input(record: DataSets):
    """The input example: a DataFrame with the feature names as columns, or an (n, features) array."""
    import numpy as np

    X = np.array(record.example, dtype=np.float64)
    if record.features:
        import pandas as pd

        return pd.DataFrame(X, columns=record.features)
    return X


def log_datasets(client, run_id: str, record: DataSets) -> None:
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.types import ColSpec, Schema, TensorSpec

    if "path" in record.source:
        source_type, source = "local", {"uri": record.source["path"], "sha256": record.source["sha256"]}
    else:
        source_type, source = "code", {"tags": {"dataset": record.source["dataset"],
                                                "args": json.dumps(record.source["args"], sort_keys=True)}}
    inputs = []
    for split, info in record.splits.items():
        import numpy as np

        targets = info["targets_shape"]
        target_spec = TensorSpec(np.dtype(info["targets_dtype"]), (-1, *targets[1:]))
        if record.features:
            schema = {"mlflow_colspec": Schema([*_input_schema(record).inputs, ColSpec(
                "long" if info["targets_dtype"].startswith("int") else "double", "target")]).to_dict()}
        else:
            schema = {"mlflow_tensorspec": {"features": _input_schema(record).to_json(),
                                            "targets": Schema([target_spec]).to_json()}}
        profile = {"sha256": info["digest"], "features_shape": info["features_shape"], "targets_shape": targets}
        dataset = Dataset(record.name, info["digest"][:DIGEST_CHARS], source_type, json.dumps(source),
                          json.dumps(schema), json.dumps(profile))
        inputs.append(DatasetInput(dataset, [InputTag("mlflow.data.context", CONTEXTS[split])]))
    client.log_inputs(run_id, inputs)
    _prepare()


def _prepare() -> None:
    """What logging a model first costs in a process, done at the run's start (beside training, not after it):
    the pyfunc and BLAS imports and MLflow's map of installed packages, which `Model.log` reads to
    check the pip requirements (`mlflow.utils.requirements_utils`, an internal name: skipped if it moves)."""
    import mlflow.pyfunc  # noqa: F401
    import scipy.linalg  # noqa: F401 - the NumPy backend's BLAS, which `from_files` loads
    from mlflow.utils import requirements_utils

    getattr(requirements_utils, "_init_packages_to_modules_map", lambda: None)()


def requirements() -> list[str]:
    """This package from its source tree (with its dependencies), and the mlflow that logged the model."""
    import mlflow

    from framework.run.config import ROOT

    return [f"framework @ {ROOT.as_uri()}", f"mlflow=={mlflow.__version__}"]


def log_model(client, folder: Path, run_id: str, records: list) -> str | None:
    """Log run `run_id`'s model from `folder` (weights.npz, config.yaml) and its run log `records`; returns its
    model id, or None (with a warning and the run tag `model.missing`) when the run's files do not make a model
    this package can load. The model is linked to the run at the final epoch's step with that epoch's metrics and
    the test metrics (`final_metrics`; not Model.log's linking: it reads every metric's history, per-batch too)."""
    import mlflow
    from mlflow.entities import LoggedModelOutput, Metric
    from mlflow.models import Model, infer_signature
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    from framework.inference import from_files
    from framework.predict import table

    run = client.get_run(run_id)
    if run.outputs and run.outputs.model_outputs:  # logged by an earlier sync of this End
        return run.outputs.model_outputs[0].model_id
    from framework.tracking.runlog import inside

    record = next((r for r in records if isinstance(r, DataSets)), None)
    try:
        weights, config = (Path(folder) / inside(folder, name) for name in (WEIGHTS, CONFIG))
        if record is None:
            raise FrameworkError("the run log has no DataSets record (written before models were logged)")
        model = from_files(weights, config)
        X = example_input(record)
        header, rows = table(model, X if record.features is None else X.to_numpy())
    except (FrameworkError, OSError, ValueError) as e:  # ValueError: a file that is a link out of the run folder
        log.warning("mlflow: run %s gets no MLflow model: %s", run_id, e)
        client.set_tag(run_id, "model.missing", str(e)[:5000])
        return None
    import os
    import warnings

    import pandas as pd

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # not in the job's terminal
    model_id = _logged_model(client, run)
    with warnings.catch_warnings(), _use_tracking_uri(client.uri):
        warnings.simplefilter("ignore", UserWarning)  # a hint on integer columns: the input schema is given
        signature = infer_signature(X, pd.DataFrame(rows, columns=header))
        signature.inputs = _input_schema(record)
        Model.log(None, mlflow.pyfunc, name=MODEL, model_id=model_id, python_model=str(CODE),
                  artifacts={"weights": str(weights), "config": str(config)}, input_example=X, signature=signature,
                  pip_requirements=requirements())
    step, final = final_metrics(folder, records)
    digests = {c: (record.name, info["digest"][:DIGEST_CHARS]) for c, info in record.splits.items()}
    client.log_outputs(run_id, [LoggedModelOutput(model_id, step)])
    client.log_batch(run_id, metrics=[Metric(key, value, stamp, step, model_id=model_id, run_id=run_id,
                                             **dict(zip(("dataset_name", "dataset_digest"),
                                                        digests.get(key.split("/")[0], (None, None)))))
                                      for key, (value, stamp) in final.items()])
    return model_id


def final_metrics(folder, records: list) -> tuple[int, dict[str, tuple[float, int]]]:
    """(the final epoch's step, {key: (value, timestamp ms)} of that epoch's metrics and the test metrics): the
    run log's last Metrics record holding `train/loss` (an epoch's) and the one holding `test/` keys."""
    from framework.tracking.messages import Metrics
    from framework.tracking.runlog import read_chunks

    epoch = [r for r in records if isinstance(r, Metrics) and "train/loss" in r.keys][-1:]
    test = [r for r in records if isinstance(r, Metrics) and any(k.startswith("test/") for k in r.keys)][-1:]
    out, step = {}, 0
    for r, rows in zip(epoch + test, read_chunks(folder, epoch + test)):
        step = int(rows[-1, 0]) if r in epoch else step
        if int(rows[-1, 0]) == step:
            out.update({k: (float(v), int(rows[-1, 1])) for k, v in zip(r.keys, rows[-1, 2:])})
    return step, out


def _logged_model(client, run) -> str:
    """The id of run `run`'s LoggedModel `MODEL` in the run's experiment (Model.log would put it in the sync process's
    active experiment), with the run's params and source tags; one an interrupted sync created is reused."""
    found = client.search_logged_models([run.info.experiment_id], f"source_run_id = '{run.info.run_id}' "
                                                                  f"AND name = '{MODEL}'", max_results=1)
    if found:
        return found[0].model_id
    tags = {k: v for k, v in run.data.tags.items() if k.startswith(("mlflow.source.", "mlflow.user"))}
    return client.create_logged_model(run.info.experiment_id, MODEL, run.info.run_id, tags=tags,
                                      params=run.data.params).model_id


def register(client, name: str, run_id: str) -> str | None:
    """Register run `run_id`'s model as a new version of `name` (created if new) with alias `ALIAS`; the version,
    or None if the run has no model. A version of this run already there is reused (a re-sent record)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    run = client.get_run(run_id)
    if not (run.outputs and run.outputs.model_outputs):
        log.warning("mlflow: run %s has no MLflow model to register as '%s'", run_id, name)
        return None
    model_id = run.outputs.model_outputs[0].model_id
    try:
        client.create_registered_model(name)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    with _use_tracking_uri(client.uri):  # the registry looks the source model up in the current tracking store
        version = found[0].version if found else client.create_model_version(
            name, f"models:/{model_id}", run_id=run_id, model_id=model_id).version
    client.set_registered_model_alias(name, ALIAS, version)
    return str(version)


def run_of(model_uri: str, uri: str) -> str:
    """The run id behind `model_uri` (models:/NAME@ALIAS, models:/NAME/VERSION or models:/<model id>) in store
    `uri`'s model registry; ConfigError naming the URI if there is none."""
    from mlflow.exceptions import MlflowException

    from framework.errors import ConfigError
    from framework.tracking.store import open_store

    client, ref = open_store(uri), model_uri[len("models:/"):]
    name, alias = ref.split("@", 1) if "@" in ref else (ref, None)
    name, _, version = name.partition("/")
    try:
        if alias is not None:
            run_id = client.get_model_version_by_alias(name, alias).run_id
        elif version:
            run_id = client.get_model_version(name, version).run_id
        else:
            run_id = client.get_logged_model(name).source_run_id
    except MlflowException as e:
        raise ConfigError(f"'{model_uri}' is not a model of {uri}: {e.message.splitlines()[0]}") from None
    if not run_id:
        raise ConfigError(f"'{model_uri}' in {uri} names no run (a model registered from elsewhere)")
    return run_id
