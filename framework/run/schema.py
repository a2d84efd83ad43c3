"""The config schema: every value's type and range, checked before any data loads.

`check(cfg)` walks the composed config. Fixed keys are declared in `SCHEMA`; a registry group
(`activation`, `optimizer`, `backend`, `data`, ...) takes its fields from the registered
constructor's type hints (`alpha: float = 0.01` -> a number), so a plugin's arguments are checked
like the built-ins'. A wrong value raises one `ConfigError` line naming the key, the value as typed
and what is accepted:

    trainer.epochs=abc: must be an integer >= 0
    backend.dtype=int32: must be one of float16, float32, float64

A plugin argument declared a float that is given as an int becomes a float in place, so
`optimizer.lr=1` and `optimizer.lr=1.0` are the same run (same params, same config hash).
"""
from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from framework.engine.profile import SORTS
from framework.errors import ConfigError
from framework.registry import callbacks
from framework.run.config import GROUPS, MOVED, callback_name, check_moved

FLOAT_DTYPES = ("float16", "float32", "float64")


@dataclass(frozen=True)
class Spec:
    """What one config value accepts: `kind` int | float | bool | str | ints | strs (lists) | any;
    `lo`/`hi` bounds (`open_lo`/`open_hi`: excluded), `choices`, `null` (None allowed)."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False
    open_hi: bool = False
    choices: tuple = ()
    null: bool = False
    note: str = ""

    def describe(self) -> str:
        if self.choices:
            text = f"one of {', '.join(map(str, self.choices))}"
        else:
            noun = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
                    "ints": "a list of integers", "strs": "a list of strings", "any": "any value"}[self.kind]
            text = noun + _bounds(self)
        return text + (" or null" if self.null else "") + (f" ({self.note})" if self.note else "")

    def accepts(self, value) -> bool:
        if value is None:
            return self.null
        if self.kind in ("ints", "strs"):
            item = Spec(self.kind[:-1], self.lo, self.hi, self.open_lo, self.open_hi, self.choices)
            return isinstance(value, (list, tuple)) and all(item.accepts(v) for v in value)
        ok = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
              "bool": lambda v: isinstance(v, bool), "str": lambda v: isinstance(v, str),
              "any": lambda v: True}[self.kind](value)
        return ok and (not self.choices or value in self.choices) and _within(self, value)


def _bounds(s: Spec) -> str:
    parts = []
    if s.lo is not None:
        parts.append(f"{'>' if s.open_lo else '>='} {s.lo:g}")
    if s.hi is not None:
        parts.append(f"{'<' if s.open_hi else '<='} {s.hi:g}")
    return (" " + " and ".join(parts)) if parts else ""


def _within(s: Spec, v) -> bool:
    if s.kind not in ("int", "float"):
        return True
    return not ((s.lo is not None and (v < s.lo or (s.open_lo and v == s.lo)))
                or (s.hi is not None and (v > s.hi or (s.open_hi and v == s.hi))))


INT, NUM, BOOL, STR = Spec("int"), Spec("float"), Spec("bool"), Spec("str")
POSITIVE = Spec("float", lo=0, open_lo=True)

# Keys outside the registry groups (and range rules for keys every entry of a group has).
SCHEMA: dict[str, Spec] = {
    "seed": Spec("int", lo=0),
    "split.val_fraction": Spec("float", lo=0, hi=1, open_hi=True),
    "split.test_fraction": Spec("float", lo=0, hi=1, open_hi=True),
    "split.stratify": BOOL, "split.standardize": BOOL,
    "objective.metric": STR, "objective.mode": Spec("str", choices=("min", "max")),
    "objective.penalty": Spec("float", null=True),
    "model.hidden": Spec("ints", lo=1, note="hidden layer widths, e.g. [128,64]; [] for none"),
    "backend.dtype": Spec("str", choices=FLOAT_DTYPES),
    # a number or null for the backend; `auto` is the run's (framework.train.resolved_threads); NumpyBackend
    # names what is wrong with any other value
    "backend.threads": Spec("any", null=True, note="an integer >= 1, auto or null"),
    "optimizer.lr": POSITIVE,
    "trainer.epochs": Spec("int", lo=0),
    "trainer.batch_size": Spec("int", lo=1, null=True, note="null: full batch"),
    "trainer.shuffle": BOOL,
    "trainer.grad_clip": Spec("float", lo=0, open_lo=True, null=True),
    "trainer.metrics": Spec("strs", null=True, note="null: the task's defaults"),
    "trainer.flush_every": Spec("int", lo=1),
    "trainer.divergence.factor": Spec("float", lo=0, open_lo=True, null=True, note="null: off"),
    "trainer.divergence.max_loss": Spec("float", lo=0, open_lo=True, null=True, note="null: off"),
    "trainer.progress": Spec("str", choices=("auto", "bar", "plain", "none")),
    "trainer.limit_batches.train": Spec("int", lo=1, null=True, note="null: all batches"),
    "trainer.limit_batches.val": Spec("int", lo=1, null=True, note="null: all batches"),
    "trainer.limit_batches.test": Spec("int", lo=1, null=True, note="null: all batches"),
    "trainer.overfit_batches": Spec("int", lo=1, null=True, note="null: off"),
    # callbacks.<name>.<argument>: rules for the built-in callbacks' arguments (entries are keyed by name)
    "callbacks.early_stopping.monitor": STR,
    "callbacks.early_stopping.mode": Spec("str", choices=("min", "max")),
    "callbacks.early_stopping.patience": Spec("int", lo=1),
    "callbacks.early_stopping.min_delta": Spec("float", lo=0),
    "callbacks.early_stopping.restore_best": BOOL,
    "callbacks.model_checkpoint.every_epochs": Spec("int", lo=0, note="0: only at the end"),
    "callbacks.model_checkpoint.directory": Spec("str", null=True, note="null: <run folder>/checkpoint"),
    "callbacks.profiler.top": Spec("int", lo=1),
    "callbacks.profiler.sort": Spec("str", choices=SORTS),
    "callbacks.profiler.directory": Spec("str", null=True, note="null: the run folder"),
    "trainer.resume": Spec("str", null=True, note="a checkpoint folder or a run id"),
    "tracking.enabled": BOOL,
    "tracking.mode": Spec("str", choices=("online", "offline")),
    "tracking.uri": Spec("str", null=True),
    "tracking.dir": Spec("str", null=True, note="null: ./runs/<time>-<id>"),
    "tracking.experiment": STR,
    "tracking.run_name": Spec("str", null=True),
    "tracking.log_every_n_batches": Spec("int", lo=1),
    "tracking.histograms": Spec("str", choices=("epoch", "none")),
    "tracking.plugin_plots": BOOL,
    "tracking.skip_finished": BOOL,
    "tracking.timeout_s": POSITIVE,
    "tracking.register_model": Spec("str", null=True, note="a model registry name"),
    "tracking.system_every": Spec("float", lo=0, open_lo=True, null=True, note="seconds; null: no system metrics"),
    "plugins.paths": Spec("strs", note="plugin folders"),
    "plugins.check": BOOL,
}
_SIMPLE = {int: "int", float: "float", bool: "bool", str: "str"}


def hint_spec(hint, default) -> Spec:
    """A constructor argument's Spec from its type hint (`float`, `int | None`, `list[str]`, ...);
    `any` where the hint cannot be checked."""
    null, args = default is None, typing.get_args(hint)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            return Spec("any")
        hint, null = rest[0], True
    if hint in _SIMPLE:
        return Spec(_SIMPLE[hint], null=null)
    if typing.get_origin(hint) is list and typing.get_args(hint) in ((int,), (str,)):
        return Spec(_SIMPLE[typing.get_args(hint)[0]] + "s", null=null)
    return Spec("any", null=null)


def group_specs(group: str, name: str, registry=None) -> dict[str, Spec]:
    """Spec of every field of group `group`'s entry `name` (in `registry`, default the group's): its
    constructor's arguments, with the range rules of `SCHEMA` for the group (e.g. `optimizer.lr` > 0)."""
    registry = registry or GROUPS[group]
    obj = registry.get(name)
    try:
        hints = typing.get_type_hints(obj.__init__ if isinstance(obj, type) else obj)
    except Exception:  # noqa: BLE001 - unresolvable annotations: unchecked
        hints = {}
    specs = {"name": STR}
    for key, default in registry.defaults(name).items():
        specs[key] = SCHEMA.get(f"{group}.{key}") or hint_spec(hints.get(key, Any), default)
    return specs


def leaf_specs(cfg: DictConfig, prefix: str = "") -> dict[str, Spec | None]:
    """Every leaf key of `cfg` ("trainer.epochs") with its Spec (None: not declared anywhere)."""
    out: dict[str, Spec | None] = {}
    for key in cfg:
        node, path = cfg[key], f"{prefix}{key}"
        if path in GROUPS and isinstance(node, DictConfig):
            fields = group_specs(path, _name(path, node.get("name")))
            out.update({f"{path}.{k}": fields.get(k) for k in node})
        elif path == "callbacks" and isinstance(node, DictConfig):
            out.update(callback_specs(node))
        elif isinstance(node, DictConfig):
            out.update(leaf_specs(node, path + "."))
        else:
            out[path] = SCHEMA.get(path)
    return out


def callback_specs(node: DictConfig) -> dict[str, Spec | None]:
    """Specs of the `callbacks` group's entries (`callbacks.<key>.<argument>`), each from the registered
    callback it names (`framework.run.config.callback_name`); an import path is refused."""
    out: dict[str, Spec | None] = {}
    for key, entry in node.items():
        if entry is None:
            continue  # callbacks.<key>=null drops the entry
        if not isinstance(entry, DictConfig):
            raise ConfigError(f"callbacks.{key}={show(entry)}: must be a node of arguments, e.g. "
                              f"+callbacks.{key}.<argument>=<value> (the entry's key names the callback)")
        if "_target_" in entry:
            raise ConfigError(f"callbacks.{key}._target_: import paths are not run from a config (configs are "
                              "shared); register the class with @framework.registry.callbacks.register(\"NAME\") in "
                              "a plugin folder (plugins.paths=[DIR]) and add it with +callbacks.NAME.<arg>=<value>")
        name = callback_name(key, entry)
        if not isinstance(name, str):
            raise ConfigError(f"callbacks.{key}.name={show(name)}: must be a registered callback name")
        fields = group_specs(f"callbacks.{name}", name, callbacks)
        out.update({f"callbacks.{key}.{k}": fields.get(k) for k in entry})
    return out


def _name(group: str, name) -> str:
    if not isinstance(name, str):
        raise ConfigError(f"{group}.name={show(name)}: must be a registered {GROUPS[group].kind} name")
    return name


def show(value) -> str:
    """`value` as it is typed on the command line: null, true, [1,abc]."""
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(show(v) for v in value) + "]"
    return str(value)


def check(cfg: DictConfig, only: str = "", skip: str | None = None) -> None:
    """Raise ConfigError (one line: key=value: what is accepted) for the first value that does not
    fit its Spec; convert ints to floats where a float is expected (`lr=1` is recorded as `lr=1.0`).
    `only`: just the keys of that section, one that names no plugins (`tracking`); else every key less
    those under `skip`, after loading `plugins.paths` (their plugins' signatures declare their fields)."""
    if only:
        leaves = leaf_specs(cfg[only], only + ".")
    else:
        from framework.discovery import load_paths

        plugins = cfg.get("plugins")
        if plugins is not None:
            for key in ("paths", "check"):
                if key in plugins:
                    _check_value(cfg, f"plugins.{key}", SCHEMA[f"plugins.{key}"])
            load_paths(list(plugins.paths))
        for old in MOVED:
            if OmegaConf.select(cfg, old) is not None:
                check_moved(old)
        leaves = leaf_specs(cfg)
    for key, spec in leaves.items():
        if spec is not None and not (skip and key.startswith(skip)):
            _check_value(cfg, key, spec)
    if not only:
        _check_float16(cfg)


def _check_value(cfg: DictConfig, key: str, spec: Spec) -> None:
    value = OmegaConf.select(cfg, key)
    if isinstance(value, ListConfig):
        value = OmegaConf.to_container(value)
    if spec.kind == "str" and not spec.choices and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # tracking.experiment=2024, trainer.resume=12345678
        OmegaConf.update(cfg, key, value)
    if not spec.accepts(value):
        raise ConfigError(f"{key}={show(value)}: must be {spec.describe()}")
    if spec.kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        OmegaConf.update(cfg, key, float(value))  # optimizer.lr=1 is 1.0, trainer.grad_clip=1 is 1.0


def _check_float16(cfg: DictConfig) -> None:
    """float16 trains with SGD, but an optimizer `eps` below float16's smallest normal number rounds
    to (nearly) 0, and Adam-like updates g / (sqrt(v) + eps) overflow at the first step."""
    backend, optimizer = cfg.get("backend"), cfg.get("optimizer")
    if backend is None or optimizer is None or backend.get("dtype") != "float16":
        return
    tiny, eps = float(np.finfo(np.float16).tiny), optimizer.get("eps")
    if isinstance(eps, (int, float)) and eps < tiny:
        raise ConfigError(f"backend.dtype=float16 with optimizer.eps={eps:g}: eps is below float16's smallest "
                          f"normal number {tiny:.2g}, so optimizer '{optimizer.name}' divides by ~0 and diverges at "
                          f"the first update; set optimizer.eps=1e-4 or use backend.dtype=float32")
