"""The `callbacks` group, the `debug` presets and the trainer's batch limits, in process."""
import numpy as np
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from framework import Callback, discovery
from framework.engine.checkpoint import Checkpointer
from framework.engine.profile import Profiler
from framework.engine.trainer import EarlyStopping
from framework.errors import ConfigError
from framework.extend import conformance
from framework.registry import callbacks
from framework.run import schema
from framework.run.config import check_override_keys, debug_last
from framework.train import _check_command_line, build, make_callbacks
from tests.helpers import compose_all, make_cfg

XOR = ["data=xor", "model.hidden=[8]", "trainer.batch_size=16"]


def test_debug_presets_compose_and_win_over_an_experiment_preset():
    fast = compose_all("+experiment=digits_mlp", "debug=fast")  # the preset sets 40 epochs, batch 64
    assert (fast.trainer.epochs, fast.tracking.enabled) == (1, False)
    assert dict(fast.trainer.limit_batches) == {"train": 1, "val": 1, "test": 1}
    assert compose_all("debug=fast", "+experiment=digits_mlp").trainer.epochs == 1  # whatever the order
    overfit = compose_all("debug=overfit")
    assert (overfit.trainer.overfit_batches, overfit.tracking.enabled, dict(overfit.callbacks)) == (2, False, {})
    profile = compose_all("debug=profile")
    assert set(profile.callbacks) == {"model_checkpoint", "profiler"} and profile.tracking.enabled
    assert set(compose_all().callbacks) == {"model_checkpoint"} and compose_all().trainer.overfit_batches is None


def test_debug_last_moves_debug_after_the_last_override_not_past_options():
    assert debug_last(["debug=fast", "+experiment=x", "--cfg", "job"]) == ["+experiment=x", "+debug=fast",
                                                                            "--cfg", "job"]
    assert debug_last(["debug=fast", "--cfg", "job"]) == ["+debug=fast", "--cfg", "job"]
    assert debug_last(["-m", "+debug=fast,overfit", "a=1"]) == ["-m", "a=1", "+debug=fast,overfit"]
    assert debug_last(["a=1", "--cfg", "job"]) == ["a=1", "--cfg", "job"]


@pytest.mark.parametrize("arg,message", [
    ("debug=nonsense", "unknown debug preset 'nonsense'. Known debug preset names: fast, overfit, profile."),
    ("callbacks=nones", "unknown callbacks option 'nones'. Did you mean 'none'? Known callbacks option names: "
                        "default, early_stopping, none."),
    ("trainer.early_stopping.enabled=true", "trainer.early_stopping.enabled: this key moved to "
                                            "callbacks.early_stopping"),
    ("trainer.checkpoint_every=2", "trainer.checkpoint_every: this key moved to "
                                   "callbacks.model_checkpoint.every_epochs"),
    ("+callbacks.early_stopping.patiense=3", "callbacks.early_stopping.patiense: unknown key of callback "
                                             "'early_stopping'; closest: patience"),
    ("callbacks.early_stopping.patience=3", "callbacks.early_stopping.patience: callbacks=default has no entry "
                                            "'early_stopping' (its entries: model_checkpoint); add it with "
                                            "+callbacks.early_stopping.patience=3"),
    ("callbacks.early_stoping.patience=3", "callbacks.early_stoping.patience: callbacks=default has no entry "
                                           "'early_stoping' (its entries: model_checkpoint); closest: early_stopping "
                                           "(add it with +callbacks.early_stopping.patience=3)"),
    ("callbacks.nosuch.x=1", "callbacks.nosuch.x: callbacks=default has no entry 'nosuch' (its entries: "
                             "model_checkpoint); registered callbacks: early_stopping, model_checkpoint, profiler"),
])
def test_command_line_mistakes_are_one_line_naming_the_fix(arg, message):
    with pytest.raises(ConfigError) as e:
        _check_command_line([arg])
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_an_old_key_in_a_config_file_names_the_new_one():
    cfg = make_cfg()
    OmegaConf.set_struct(cfg, False)
    cfg.trainer.early_stopping = {"enabled": False, "patience": 3}  # a preset written before the move
    with pytest.raises(ConfigError, match=r"^trainer.early_stopping: this key moved to callbacks.early_stopping"):
        schema.check(cfg)


@pytest.mark.parametrize("args,message", [
    (["+callbacks.x._target_=os.system"], r"^callbacks.x._target_: import paths are not run from a config"),
    (["+callbacks.nonexistent.a=1"], r"^unknown callback 'nonexistent'. Known callback names: early_stopping, "),
    (["+callbacks.early_stopping.patience=0"], r"^callbacks.early_stopping.patience=0: must be an integer >= 1$"),
    (["+callbacks.profiler.sort=time"], r"^callbacks.profiler.sort=time: must be one of cumulative, tottime, ncalls$"),
    (["trainer.limit_batches.val=0"], r"^trainer.limit_batches.val=0: must be an integer >= 1 or null"),
])
def test_bad_callback_and_limit_values_are_refused_before_data_loads(args, message):
    with pytest.raises(ConfigError, match=message):
        schema.check(make_cfg(*args))


def test_entries_become_registered_callbacks_keyed_by_name_or_name_field():
    assert [type(cb) for cb in make_callbacks(make_cfg())] == [Checkpointer]
    assert make_callbacks(make_cfg("callbacks=none")) == []
    assert make_callbacks(make_cfg("callbacks.model_checkpoint=null")) == []
    made = make_callbacks(make_cfg("callbacks=early_stopping", "callbacks.early_stopping.patience=4",
                                   "+callbacks.slow.name=profiler", "+callbacks.slow.sort=tottime"))
    assert [type(cb) for cb in made] == [Checkpointer, EarlyStopping, Profiler]
    assert made[1].patience == 4 and made[2].sort == "tottime"
    with pytest.raises(ConfigError, match=r"^callbacks.model_checkpoint \(model_checkpoint\): .*Accepted arguments"):
        make_callbacks(make_cfg("+callbacks.model_checkpoint.every=2"))


def test_early_stopping_from_the_callbacks_group_stops_the_run_and_restores_the_best_epoch():
    t = build(make_cfg(*XOR, "trainer.epochs=300", "optimizer.lr=0.05", "+callbacks.early_stopping.patience=2"))
    assert isinstance(t.early_stopping, EarlyStopping) and t.early_stopping not in t.callbacks
    final = t.fit()
    losses = t.history["val/loss"]
    assert len(losses) < 300 and losses[-1] > min(losses) == final["best/val/loss"]  # stopped: no progress
    assert t.evaluate("val")["loss"] == pytest.approx(min(losses), rel=1e-6)  # the best weights are back
    with pytest.raises(ConfigError, match="two early stopping callbacks"):
        build(make_cfg(*XOR, "+callbacks.a.name=early_stopping", "+callbacks.b.name=early_stopping"))


def test_limit_batches_cuts_each_split_and_the_epoch_records_follow():
    full = build(make_cfg(*XOR, "trainer.epochs=1"))
    t = build(make_cfg(*XOR, "trainer.epochs=1", "trainer.limit_batches.train=2", "trainer.limit_batches.val=1"))
    assert (len(t.splits.train), len(t.splits.val), len(t.splits.test)) == (32, 16, len(full.splits.test))
    np.testing.assert_array_equal(t.splits.train.X, full.splits.train.X[:32])
    seen = []
    t.callbacks.append(type("Rec", (Callback,), {"on_batches": lambda s, tr, r: seen.extend(r.steps)})())
    t.fit()
    assert t.steps_per_epoch == 2 and seen == [0, 1]
    epoch = {k: v[0] for k, v in t.history.items()}
    assert epoch["epoch/samples_per_second"] == pytest.approx(32 / epoch["epoch/seconds"])
    assert epoch["val/loss"] == pytest.approx(t.evaluate("val")["loss"])  # on the 16 rows kept


def test_overfit_batches_validates_on_the_training_rows():
    t = build(make_cfg(*XOR, "trainer.overfit_batches=1"))
    assert len(t.splits.train) == 16 and t.splits.val is t.splits.train


USER = '''from framework import Callback
from framework.registry import callbacks


@callbacks.register("{name}")
class Bad(Callback):
    def on_epoch_end(self, trainer, epoch):
        pass
'''


@pytest.mark.usefixtures("isolated")
def test_the_checker_refuses_a_callback_with_a_wrong_hook_or_no_callback_base(tmp_path):
    (tmp_path / "bad_cb.py").write_text(USER.format(name="bad_cb"))
    (tmp_path / "plain_cb.py").write_text("from framework.registry import callbacks\n\n\n"
                                          "@callbacks.register('plain_cb')\nclass Plain:\n    pass\n")
    discovery.load_paths([tmp_path])
    hooks = conformance.run(callbacks, "bad_cb", "hooks")
    assert not hooks.ok and hooks.figure.startswith("on_epoch_end(self, trainer, epoch) cannot be called as "
                                                    "on_epoch_end(self, trainer, epoch, logs)")
    assert not conformance.run(callbacks, "plain_cb", "hooks").ok
    (tmp_path / "claims_cb.py").write_text("from pathlib import Path\n\nfrom framework import Callback\n"
                                           "from framework.registry import callbacks\n\n\n"
                                           "@callbacks.register('claims_cb')\nclass Claims(Callback):\n"
                                           "    def files(self):\n        return [Path('nowhere.txt')]\n")
    discovery.load_paths([tmp_path])
    runs = conformance.run(callbacks, "claims_cb", "runs")
    assert not runs.ok and runs.figure == "files() names ['nowhere.txt'], which it did not write"
    with pytest.raises(ConfigError, match=r"conformance check\(s\) failed .*callback 'bad_cb' hooks: on_epoch_end"):
        build(make_cfg(*XOR, f"plugins.paths=[{tmp_path}]", "+callbacks.bad_cb={}"))


def test_an_entry_keyed_by_another_name_is_checked_against_the_callback_its_name_field_names():
    args = ["+callbacks.mine.name=profiler", "+callbacks.mine.top=5"]
    check_override_keys(OverridesParser.create().parse_overrides(args))  # `mine` names no callback: not refused
    (cb,) = make_callbacks(make_cfg("callbacks=none", *args))
    assert isinstance(cb, Profiler) and cb.top == 5
    with pytest.raises(ConfigError, match=r"^callbacks.mine.top=0: must be an integer >= 1$"):
        schema.check(make_cfg("callbacks=none", "+callbacks.mine.name=profiler", "+callbacks.mine.top=0"))
