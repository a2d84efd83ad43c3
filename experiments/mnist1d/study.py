"""The MNIST-1D study, one Hydra multirun per part, all recorded in the MLflow experiment `mnist1d_study`:

    python -m experiments.mnist1d.study                  # every part, in order (about an hour on 2 cores)
    python -m experiments.mnist1d.study depth activations --uri sqlite:////abs/path/study.db
    python -m experiments.mnist1d.report                 # then: RESULTS.md and the plots

Each part is `python -m framework.train -m <its overrides> tracking.run_name=<part>`: the sweep's parent
run and its children carry the part's name, which is how the report finds them again. Runs go one after
another at the lowest CPU priority (`nice -n 19`).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

EXPERIMENT = "mnist1d_study"
SEEDS = "seed=0,1,2,3,4"
ACTIVATIONS = "elu,gelu,identity,leaky_relu,relu,selu,sigmoid,silu,softplus,swish,tanh"  # all but softmax
DEPTHS = {2: [100] * 2, 4: [100] * 4, 8: [100] * 8}
DEPTH_ACTIVATIONS = "sigmoid,tanh,relu,gelu"

PARTS: dict[str, list[str]] = {
    # the paper's rows: its training recipe on its split, 5 seeds
    "paper_logreg": ["+experiment=mnist1d_logreg", SEEDS, "tracking.log_every_n_batches=10"],
    "paper_mlp": ["+experiment=mnist1d_mlp", SEEDS, "tracking.log_every_n_batches=10"],
    # model selection on 600 validation rows of the 4000 (test rows not loaded)
    "sweep": ["+hparams_search=mnist1d_optuna"],
    # the winner, trained on all 4000 rows and tested once per seed
    "best_mlp": ["+experiment=mnist1d_mlp_best", SEEDS, "tracking.log_every_n_batches=10"],
    # the winner was picked on one seed; around it, 3 seeds per config on the validation rows
    "robust": ["+experiment=mnist1d_mlp_best", "data.test=drop", "split.val_fraction=0.15", "split.test_fraction=0",
               "activation=relu,silu", "scheduler=constant,cosine", "seed=0,1,2", "tracking.log_every_n_batches=10"],
    # the best mean of `robust`, trained on all 4000 rows and tested once per seed
    "robust_mlp": ["+experiment=mnist1d_mlp_robust", SEEDS, "tracking.log_every_n_batches=10"],
    # the paper's MLP with each activation: 30 epochs, validation curves on 600 of the training rows
    "activations": ["+experiment=mnist1d_mlp", f"activation={ACTIVATIONS}", SEEDS, "trainer.epochs=30",
                    "split.val_fraction=0.15", "tracking.log_every_n_batches=10"],
    # per-layer gradient norms at every batch, depths 2, 4, 8
    "depth": ["+experiment=mnist1d_mlp", f"activation={DEPTH_ACTIVATIONS}",
              "model.hidden=" + ",".join(str(h).replace(" ", "") for h in DEPTHS.values()), "seed=0",
              "trainer.epochs=20"],
    # the same for the saturating activations under Xavier initialization (gain 1, their classical one)
    "depth_xavier": ["+experiment=mnist1d_mlp", "initializer=xavier_uniform", "activation=sigmoid,tanh",
                     "model.hidden=" + ",".join(str(h).replace(" ", "") for h in DEPTHS.values()), "seed=0",
                     "trainer.epochs=20"],
}


def command(part: str, uri: str | None = None) -> list[str]:
    """The multirun command line of `part`."""
    extra = [f"tracking.uri={uri}"] if uri else []
    return [sys.executable, "-m", "framework.train", "-m", *PARTS[part], f"tracking.experiment={EXPERIMENT}",
            f"tracking.run_name={part}", "trainer.progress=none", *extra]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("parts", nargs="*", help=f"parts to run (default: all): {', '.join(PARTS)}")
    p.add_argument("--uri", help="MLflow store (default: the framework's, sqlite:///<project root>/mlflow.db)")
    args = p.parse_args(argv)
    unknown = [part for part in args.parts if part not in PARTS]
    if unknown:
        p.error(f"unknown part(s) {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    for part in args.parts or PARTS:
        start = time.perf_counter()
        rc = subprocess.call(["nice", "-n", "19", *command(part, args.uri)], env=env)
        print(f"{part}: exit {rc}, {time.perf_counter() - start:.0f} s", flush=True)
        if rc:
            sys.exit(rc)


if __name__ == "__main__":
    main()
