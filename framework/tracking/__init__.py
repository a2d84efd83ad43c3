"""Tracking: every run recorded in a local run log first, then synced into MLflow by another process.

    training process                         sync process (one per launcher process)
    job.Tracking -> logger.RunLogger  --->  runlog/ (journal + points)  --->  service -> replay.RunSync -> store
                                  (Follow / Synced: messages)

- `messages`: the records of the run log and the requests/replies between the two processes.
- `runlog`: the run log's format, writer, reader, acknowledgements and locks.
- `logger`: the trainer callback that writes it; `job`: the one object `framework.train` uses.
- `places`: store URI, run folder, pre-training checks; `process` / `service`: the sync process.
- `replay`: replaying a run log into a store (`python -m framework.sync`); `store`: MLflow access with
  retries and bulk inserts; `plots`: the run's figures; `sweeps`: a multirun's parent run;
  `notes`: run names and descriptions; `table`: the runs table (`python -m framework.runs`); `report/`: the sweep
  report (`python -m framework.report`; its `svg` module draws every chart of the project).
Only `service`, `replay`'s store side, `store`, `table` (for stores other than SQLite files) and the report's store
reader import mlflow.
"""
from framework.tracking.job import Tracking
from framework.tracking.places import artifact_location, store_uri, sweep_id

__all__ = ["Tracking", "artifact_location", "store_uri", "sweep_id"]
