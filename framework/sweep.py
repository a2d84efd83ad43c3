"""Hydra callback: one multirun is one MLflow parent run, each job's run is its child.

Enabled in conf/config.yaml:

    hydra:
      callbacks:
        mlflow_sweep:
          _target_: framework.sweep.MlflowSweep

`on_multirun_start` creates the experiment and the parent run before any job starts (parallel jobs
of the joblib launcher then never race to create them). The parent is tagged `sweep.id` (the
absolute sweep directory, or `storage#study_name` of a stored Optuna study: running that again reopens
the same parent, see `tracking.sweep_id`), `sweep.role=parent` and `sweep.keys` (the swept keys, which name the
children: "3: optimizer.lr=0.01"); its params are the sweep's overrides and the sweeper's settings
(`sweeper.params.*` for the Optuna sweeper). Every job's writer finds its parent
by `sweep.id`, whatever the launcher or sweeper. `on_multirun_end` tags the parent with its best
child by the sweep's objective (`objective.metric`, `objective.mode`) and finishes it; a sweep that dies first leaves it FAILED at exit.
Like the trainer, this process never imports mlflow: the writer process does the work.
"""
from __future__ import annotations

import atexit
import logging

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback

from .config import flatten
from .tracking import artifact_location, call_writer, store_uri, sweep_id

log = logging.getLogger(__name__)


class MlflowSweep(Callback):
    """Creates a multirun's parent run at its start and finishes it at its end."""

    def __init__(self):
        self._close_spec: dict | None = None

    def on_multirun_start(self, config, **kwargs) -> None:
        tracking = config.get("tracking")
        if tracking is None or not tracking.enabled:
            return
        hc = config.hydra
        sid, uri = sweep_id(hc), store_uri(tracking.uri)
        task = list(hc.overrides.task)
        parsed = OverridesParser.create().parse_overrides(task)
        params = {o.key_or_group: o.input_line.split("=", 1)[1] for o in parsed if "=" in o.input_line}
        params.update({f"sweeper.{k}": str(v) for k, v in flatten(hc.sweeper).items()})
        swept = [o.key_or_group for o in parsed if o.is_sweep_override()] + list(hc.sweeper.get("params") or {})
        parent = call_writer("open_sweep", {
            "uri": uri, "experiment": tracking.experiment, "sweep_id": sid,
            "artifact_location": artifact_location(uri, tracking.experiment),
            "run_name": tracking.run_name or str(hc.sweep.dir), "params": params,
            "tags": {"hydra.overrides": " ".join(task), "sweep.keys": " ".join(swept),
                     "sweep.sweeper": hc.sweeper._target_, "sweep.launcher": hc.launcher._target_},
        })
        self._close_spec = {"uri": uri, "parent": parent, "metric": config.objective.metric,
                            "mode": config.objective.mode}
        atexit.register(self._close, "FAILED")
        log.info("mlflow: sweep %s is parent run %s", sid, parent)

    def on_multirun_end(self, config, **kwargs) -> None:
        if self._close_spec is not None:
            atexit.unregister(self._close)
            best = self._close("FINISHED")
            if best:
                log.info("mlflow: best run %s (%s = %.6g)", best["run_name"], self._close_spec["metric"], best["value"])
            self._close_spec = None

    def _close(self, status: str):
        return call_writer("close_sweep", {**self._close_spec, "status": status})
