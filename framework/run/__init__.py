"""Run assembly: from a command line to a configured job.

`config` (Hydra config groups built from the registries, presets), `schema` (every value checked and
normalized before anything runs), `launchers` (how parallel jobs share the machine's cores), `sweep`
(the Hydra callbacks of a multirun: its MLflow parent run, the failed-jobs report).
"""
