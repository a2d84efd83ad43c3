"""The engine: one training step and the loop around it.

`step` (forward -> loss -> backward -> update), `trainer` (epochs, batches, the per-batch record,
divergence and NaN guards), `callbacks` (what the trainer reports to), `data` and `tasks` (splits,
targets, what each task feeds), `metrics` (evaluation), `gradients` (norms, clipping), `checkpoint`
and `weights` (the `.npz` + JSON files a run leaves), `progress` (the terminal's epoch lines),
`profile` (cProfile of a fit: `debug=profile`).
Nothing here imports Hydra or MLflow.
"""
