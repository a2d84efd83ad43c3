"""Runs composed by Hydra: presets, options from registries, determinism, schedules, early stopping."""
import subprocess
import sys

import numpy as np
import pytest

from framework import Callback
from framework.errors import ConfigError, ShapeError
from framework.registry import activations, losses, optimizers, schedulers
from framework.run.config import experiment_presets
from framework.train import build, train
from tests.helpers import compose_all, make_cfg

PRESETS = list(experiment_presets())


def test_required_presets_exist():
    assert {"seed_worked_example", "views_regression", "sigmoid_fit", "logistic_regression", "digits_mlp",
            "mnist1d_mlp", "mnist1d_logreg", "mnist1d_mlp_best", "mnist1d_mlp_robust"} <= set(PRESETS)



def test_presets_are_found_in_subfolders_and_a_duplicate_name_is_refused(tmp_path, monkeypatch):
    import framework.run.config as config

    presets = config.experiment_presets()
    assert {presets[f"mnist1d_{n}"].parent.name for n in ("logreg", "mlp", "mlp_best", "mlp_robust")} == {"mnist1d"}
    (tmp_path / "a").mkdir()
    (tmp_path / "top.yaml").write_text("{}")
    (tmp_path / "a" / "deep.yaml").write_text("{}")
    monkeypatch.setattr(config, "EXPERIMENTS_DIR", tmp_path)
    assert list(config.experiment_presets()) == ["deep", "top"]
    (tmp_path / "a" / "top.yaml").write_text("{}")
    both = "two experiment presets are named 'top': .*a/top.yaml and .*[0-9]/top.yaml; rename one"
    with pytest.raises(ConfigError, match=both):
        config.experiment_presets()


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes_and_trains_briefly(name):
    small = ["data.n=300"] if "mnist1d" in name else []
    cfg = make_cfg(f"+experiment={name}", "trainer.epochs=2", *small)
    final = train(cfg).metrics
    assert np.isfinite(final["objective"]) and np.isfinite(final["train/loss"])
    assert any(k.startswith("test/") for k in final)


def test_seed_worked_example_is_the_lectures_network():
    cfg = make_cfg("+experiment=seed_worked_example")
    t = build(cfg)
    assert t.model.sizes == [2, 2, 1]
    assert [a.name for a in t.model.activations] == ["sigmoid", "sigmoid"]
    assert t.loss.name == "mse" and t.optimizer.name == "sgd"


def test_every_registered_name_is_an_option():
    """Every registered name of each group is an option of the group, with its constructor's defaults. One
    compose selects them all, each under a key of its own (`+activation@every.activation.relu=relu` loads
    the node that `activation=relu` puts at `activation`, where conf/config.yaml declares nothing else),
    not one compose per name (~0.2 s each)."""
    groups = {"activation": activations, "loss": losses, "optimizer": optimizers, "scheduler": schedulers}
    cfg = compose_all(*(f"+{group}@every.{group}.{name}={name}" for group, registry in groups.items()
                        for name in registry.names()))
    for group, registry in groups.items():
        assert list(cfg.every[group]) == registry.names(), group
        for name in registry.names():
            assert cfg.every[group][name].name == name, (group, name)
            assert set(registry.defaults(name)) <= set(cfg.every[group][name]), (group, name)


def test_constructor_kwargs_are_typed_fields():
    cfg = make_cfg("activation=leaky_relu", "activation.alpha=0.2")
    assert cfg.activation.alpha == 0.2
    with pytest.raises(ConfigError, match="activation.alpha=abc: must be a number"):
        build(make_cfg("activation=leaky_relu", "activation.alpha=abc"))


def test_same_seed_bit_identical_different_seed_differs():
    def weights(seed):
        t = build(make_cfg("trainer.epochs=2", f"seed={seed}"))
        t.fit()
        return t.model.state_dict(), t.history

    (a, ha), (b, hb), (c, _) = weights(0), weights(0), weights(1)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert ha["train/loss"] == hb["train/loss"]
    assert a["layers.0.W"].tobytes() != c["layers.0.W"].tobytes()


def test_one_update_per_batch_and_full_batch():
    t = build(make_cfg("trainer.epochs=2", "trainer.batch_size=100"))
    t.fit()
    n = len(t.splits.train)
    assert t.steps_per_epoch == -(-n // 100) and t.step == 2 * t.steps_per_epoch
    t = build(make_cfg("trainer.epochs=3", "trainer.batch_size=null"))
    t.fit()
    assert t.steps_per_epoch == 1 and t.step == 3 and t.optimizer.t == 3


def test_early_stopping_stops_and_restores_best():
    t = build(make_cfg("trainer.epochs=200", "callbacks=early_stopping",
                       "callbacks.early_stopping.patience=3", "optimizer.lr=0.01"))
    final = t.fit()
    epochs = len(t.history["val/loss"])
    assert epochs < 200
    best = min(t.history["val/loss"])
    assert final["best/val/loss"] == best
    assert t.evaluate("val")["loss"] == pytest.approx(best, rel=1e-6)


def test_schedulers_values_at_given_steps():
    def lr(s, t, spe=10, total=100):
        s.start(total, spe)
        return s.lr(0.1, t)
    assert lr(schedulers.create("constant"), 57) == 0.1
    step = schedulers.create("step", step_size=2, gamma=0.5)
    assert [lr(step, t) for t in (0, 19, 20, 39, 40)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    exp = schedulers.create("exponential", gamma=0.9)
    assert lr(exp, 35) == pytest.approx(0.1 * 0.9**3)
    cos = schedulers.create("cosine", min_factor=0.1)
    assert [lr(cos, t) for t in (0, 50)] == pytest.approx([0.1, 0.1 * (0.1 + 0.9 * 0.5)])
    warm = schedulers.create("warmup", warmup_epochs=2)
    assert [lr(warm, t) for t in (0, 9, 19, 20)] == pytest.approx([0.005, 0.05, 0.1, 0.1])


def test_scheduler_drives_the_optimizer_lr():
    t = build(make_cfg("trainer.epochs=2", "scheduler=step", "scheduler.step_size=1", "scheduler.gamma=0.5",
                       "optimizer.lr=0.1"))
    seen = []

    class Spy(Callback):
        def on_batch_end(self, trainer, step):
            seen.append(trainer.optimizer.lr)

    t.callbacks.append(Spy())
    t.fit()
    assert seen[0] == 0.1 and seen[-1] == 0.05


def test_gradient_clipping_caps_the_update():
    t = build(make_cfg("trainer.epochs=1", "trainer.grad_clip=1e-3", "optimizer=sgd", "optimizer.lr=1.0"))
    before = t.model.state_dict()
    t.fit()
    moved = np.sqrt(sum(np.sum((t.model.state_dict()[k] - before[k]) ** 2) for k in before))
    assert moved <= t.steps_per_epoch * 1e-3 * 1.0001


def test_logit_loss_with_squashing_output_is_rejected():
    with pytest.raises(ConfigError, match="output_activation must be identity"):
        build(make_cfg("output_activation=softmax"))


def test_class_loss_on_regression_data_is_rejected():
    with pytest.raises(ConfigError, match="regression task"):
        build(make_cfg("data=diabetes"))


def test_model_output_size_mismatch_states_shapes():
    from framework.engine.trainer import Trainer
    from framework.model import MLP

    t = build(make_cfg())
    with pytest.raises(ShapeError, match="needs 10"):
        Trainer(MLP([64, 5]), t.loss, t.optimizer, t.splits)


@pytest.mark.slow
def test_default_run_reaches_095_test_accuracy(tmp_path):
    out = subprocess.run([sys.executable, "-m", "framework.train", "tracking.enabled=false"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(l for l in out.stdout.splitlines() if "test/accuracy" in l)
    assert float(line.split()[-2]) >= 0.95, line


def test_help_lists_groups_and_registered_options(monkeypatch, capsys):
    from hydra.core.hydra_config import HydraConfig

    from framework.train import main

    monkeypatch.setattr("sys.argv", ["framework.train", "--help"])  # `python -m framework.train` runs main()
    monkeypatch.setattr(HydraConfig.instance(), "cfg", HydraConfig.instance().cfg)  # main() sets it: undone after
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 0
    out = capsys.readouterr().out
    for text in ("activation:", "optimizer:", "leaky_relu", "adamw", "experiment:"):
        assert text in out, text


def test_trainer_gives_numpy_losses_on_array_api_strict():
    """The whole loop (shuffle, batches, loss, backward, adam, schedule, metrics) uses only the portable API."""
    pytest.importorskip("array_api_strict")
    runs = {}
    for backend in ("numpy", "array_api"):
        t = build(make_cfg(f"backend={backend}", "data=iris", "backend.dtype=float64", "trainer.epochs=2",
                           "trainer.batch_size=50", "scheduler=cosine", "trainer.grad_clip=5.0"))
        runs[backend] = (t.fit(), t)
    (a, ta), (b, tb) = runs["numpy"], runs["array_api"]
    assert tb.model.backend.xp.__name__ == "array_api_strict"
    np.testing.assert_allclose(tb.history["train/loss"], ta.history["train/loss"], rtol=1e-10)
    assert b["test/loss"] == pytest.approx(a["test/loss"], rel=1e-10) and b["test/accuracy"] == a["test/accuracy"]


@pytest.mark.parametrize("block_values", [5 * 7 * 3, 1 << 20])  # 3-batch blocks (the last one partial), one block
def test_shuffled_batches_are_the_permuted_rows_whatever_the_gather_block(monkeypatch, block_values):
    """`Trainer.fit` trains on rows order[i*bs:(i+1)*bs] of each epoch's permutation (seeded NumPy
    generator) however many rows it gathers at once: the same weights as `train_step` on those rows."""
    import framework.engine.trainer as trainer_module
    from framework import train_step
    from framework.engine.data import Dataset, Splits
    from framework.engine.trainer import Trainer
    from framework.model import MLP

    monkeypatch.setattr(trainer_module, "GATHER_VALUES", block_values)
    rng = np.random.default_rng(0)
    ds = Dataset(rng.normal(size=(50, 5)), rng.integers(0, 3, 50), "classification", 3, "toy")
    models = [MLP((5, 4, 3), "tanh", "identity", dtype="float64", seed=1) for _ in range(2)]
    loss = losses.create("cross_entropy")
    trainer = Trainer(models[0], loss, optimizers.create("sgd", lr=0.1), Splits(ds, None, None),
                      epochs=2, batch_size=7, seed=3)
    trainer.fit()
    assert min(trainer._block_rows, 50) == (21 if block_values < 1000 else 50)  # 3 blocks, or the whole epoch
    opt, order_rng = optimizers.create("sgd", lr=0.1), np.random.default_rng(3)
    for _ in range(2):
        order = order_rng.permutation(50)
        for lo in range(0, 50, 7):
            rows = order[lo:lo + 7]
            train_step(models[1], loss, opt, ds.X[rows], ds.y[rows])
    for k, w in models[0].state_dict().items():
        assert np.array_equal(w, models[1].state_dict()[k]), k
