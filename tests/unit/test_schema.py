"""Every config value is checked before data loads: a wrong-typed value at every leaf of the composed
config (and of every registered option of every group) gets one line naming key, value and what is
accepted."""
import functools
import logging

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from framework.errors import ConfigError
from framework.run import schema
from framework.run.config import CONF_DIR, GROUPS
from framework.train import build
from tests.helpers import make_cfg

WRONG = {"int": "abc", "float": "abc", "bool": "abc", "str": "[1,2]", "ints": "[abc]", "strs": "abc"}
PARSER = OverridesParser.create()


def option_configs():
    """(label, cfg): the default config, then the same object with each registered option of every group
    in its group's place (the group's default put back after the group's options): use it before the next."""
    cfg = make_cfg()
    yield "default", cfg
    for group, registry in GROUPS.items():
        default = cfg[group]
        for name in registry.names():
            yaml = CONF_DIR / group / f"{name}.yaml"
            cfg[group] = OmegaConf.load(yaml) if yaml.exists() else {"name": name, **registry.defaults(name)}
            yield f"{group}={name}", cfg
        cfg[group] = default


@functools.cache
def parsed(text: str):
    """The value of the command-line override `key=text` (Hydra's parser; the key does not change it)."""
    return PARSER.parse_override(f"key={text}").value()


def set_override(cfg, key: str, text: str):
    """Apply `key=text` to `cfg` (in place) the way Hydra parses a command-line override."""
    OmegaConf.update(cfg, key, parsed(text), merge=False)


def test_every_leaf_of_every_option_is_declared():
    undeclared = {}
    for label, cfg in option_configs():
        group, _, name = label.partition("=")
        assert not name or cfg[group].name == name, label
        undeclared[label] = [k for k, s in schema.leaf_specs(cfg).items() if s is None]
        schema.check(cfg)  # every default value is accepted
    assert not {k: v for k, v in undeclared.items() if v}, undeclared
    assert len(undeclared) == 1 + sum(len(registry.names()) for registry in GROUPS.values())


def test_a_wrong_typed_value_at_every_leaf_gets_one_line_naming_key_value_and_what_is_accepted():
    checked = 0
    for label, work in option_configs():  # each wrong value is set in `work`, checked, and the right one put back
        section = None if label == "default" else label.split("=")[0]
        before = work.copy() if section is None else work[section].copy()
        for key, spec in schema.leaf_specs(work).items():
            if spec.kind == "any" or (section and not key.startswith(section + ".")):
                continue
            text, right = WRONG[spec.kind], OmegaConf.select(work, key)
            set_override(work, key, text)
            with pytest.raises(ConfigError) as e:
                schema.check(work)
            OmegaConf.update(work, key, OmegaConf.to_object(right) if OmegaConf.is_config(right) else right,
                             merge=False)
            message = str(e.value)
            assert message.startswith(f"{key}={text}: must be") and "\n" not in message, (label, message)
            checked += 1
        assert (work if section is None else work[section]) == before, label
    assert checked > 100


@pytest.mark.parametrize("override,message", [
    ("trainer.epochs=abc", "trainer.epochs=abc: must be an integer >= 0"),
    ("trainer.batch_size=abc", "trainer.batch_size=abc: must be an integer >= 1 or null (null: full batch)"),
    ("model.hidden=[abc]", "model.hidden=[abc]: must be a list of integers >= 1 (hidden layer widths, "
                           "e.g. [128,64]; [] for none)"),
    ("backend.dtype=int32", "backend.dtype=int32: must be one of float16, float32, float64"),
    ("optimizer.lr=0", "optimizer.lr=0: must be a number > 0"),
    ("split.val_fraction=1", "split.val_fraction=1: must be a number >= 0 and < 1"),
])
def test_bad_values_of_the_issue(override, message):
    with pytest.raises(ConfigError) as e:
        build(make_cfg(override))
    assert str(e.value) == message


def test_numbers_are_normalised_so_equal_values_give_equal_configs():
    a, b = make_cfg("optimizer.lr=1"), make_cfg("optimizer.lr=1.0")
    schema.check(a)
    schema.check(b)
    assert a.optimizer.lr == 1.0 and isinstance(a.optimizer.lr, float) and a == b
    c = make_cfg("tracking.experiment=2024")
    schema.check(c)
    assert c.tracking.experiment == "2024"


def test_float16_refuses_an_eps_it_cannot_hold_and_trains_with_sgd():
    with pytest.raises(ConfigError, match=r"backend.dtype=float16 with optimizer.eps=1e-08: eps is below "
                                          r"float16's smallest normal number 6.1e-05"):
        build(make_cfg("backend.dtype=float16"))
    accuracy = {}
    for dtype in ("float16", "float32"):
        t = build(make_cfg("backend.dtype=" + dtype, "optimizer=sgd", "optimizer.lr=0.05", "trainer.epochs=2",
                           "model.hidden=[32]"))
        accuracy[dtype] = t.fit()["val/accuracy"]
    assert accuracy["float16"] > 0.85 and abs(accuracy["float16"] - accuracy["float32"]) < 0.02, accuracy


def test_batch_larger_than_the_training_set_is_reported(caplog):
    with caplog.at_level(logging.WARNING):
        t = build(make_cfg("trainer.batch_size=100000"))
    assert t.steps_per_epoch == 1
    assert ("trainer.batch_size=100000 is larger than the 1257 training rows: every update uses all of them "
            "(full-batch gradient descent, as with trainer.batch_size=null)") in caplog.text


def test_tracking_values_are_checked_by_tracking_once_not_again_by_build():
    cfg = make_cfg("tracking.mode=nope")
    schema.check(cfg, skip="tracking")  # what build() checks
    with pytest.raises(ConfigError, match=r"^tracking.mode=nope: must be"):
        schema.check(cfg, only="tracking")  # what Tracking checks, before the data loads
