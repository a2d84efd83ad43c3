"""Hydra config: every registered plugin becomes an option of its group, every preset in
experiments/ (or a folder below it) becomes `+experiment=NAME`.

A registry entry without a YAML file in conf/<group>/ is stored in Hydra's ConfigStore as a node
`{name: <name>, <kwarg>: <default>, ...}` built from its constructor's signature, so
`activation=leaky_relu activation.alpha=0.2` works with no YAML; a YAML file of the same name wins.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from framework.errors import ConfigError
from framework.registry import ALL, activations, callbacks, metrics

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "conf"
EXPERIMENTS_DIR = ROOT / "experiments"

# config group -> registry, for groups whose node is one plugin ({name, **arguments}): every registry's
# group but metrics (a list under trainer.metrics) and callbacks (a node of entries: `callback_name`), and
# output_activation, which draws on the activations too
GROUPS = {**{g: r for g, r in ALL.items() if r not in (metrics, callbacks)}, "output_activation": activations}
# groups whose options are only their YAML files in conf/<group>/
FILE_GROUPS = {"callbacks": "callbacks option", "debug": "debug preset"}


def node_for(registry, name: str):
    """A dataclass `{name, **constructor kwargs}` with the signature's defaults. Its fields are untyped
    (`Any`): `framework.run.schema` checks the values, with one-line messages instead of Hydra's."""
    fields: list[tuple] = [("name", Any, dataclasses.field(default=name))]
    for key, default in registry.defaults(name).items():
        fields.append((key, Any, dataclasses.field(default_factory=lambda d=default: d)))
    cls_name = "".join(p.title() for p in f"{registry.group}_{name}".split("_")) + "Config"
    return dataclasses.make_dataclass(cls_name, fields)


def register_configs() -> None:
    """Store nodes for registered names that have no YAML, and the experiment presets."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, registry in GROUPS.items():
        for name in registry.names():
            if not (CONF_DIR / group / f"{name}.yaml").exists():
                cs.store(group=group, name=name, node=node_for(registry, name))
    for name, path in experiment_presets().items():
        cs.store(group="experiment", name=name, node=OmegaConf.load(path), package="_global_")


def compose(overrides=(), hydra: bool = False) -> DictConfig:
    """Hydra's composition of conf/config.yaml with `overrides` (before `framework.run.schema.check`),
    `hydra`: with the `hydra.*` node. The registered plugins' options must be stored first
    (`register_configs`); `framework.compose` does that and the checks. An override Hydra rejects
    (`+seed=1`: the key exists; `lr=0.1,0.2`: a sweep) is a ConfigError with the first paragraph of its message."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            return hydra_compose(config_name="config", overrides=debug_last(overrides), return_hydra_config=hydra)
        except HydraException as e:
            raise ConfigError(" ".join(line.strip() for line in str(e).split("\n\n")[0].splitlines())) from None


def debug_last(args) -> list[str]:
    """The command line `args` with `debug=X` moved after its last override as `+debug=X`: Hydra applies
    appended configs in command-line order, so a debug preset comes after `+experiment=` presets and wins
    over their settings (one with `debug: null` in the defaults list would come before them)."""
    debug = ["+" + a.lstrip("+") for a in args if "=" in a and a.lstrip("+").split("=", 1)[0] == "debug"]
    keep = ["+" + a.lstrip("+") not in debug for a in args]
    rest = [a for a, k in zip(args, keep) if k]
    at = max((i + 1 for i, a in enumerate(rest) if "=" in a and not a.startswith("-")),
             default=keep.index(False) if debug else 0)  # no other override: where the first debug= was
    return rest[:at] + debug + rest[at:]


def file_options(group: str) -> list[str]:
    """The options of a `FILE_GROUPS` group: its YAML files' names."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def callback_name(key: str, entry) -> str:
    """The registered callback an entry `callbacks.<key>` runs: its `name` field, else its key."""
    name = entry.get("name") if isinstance(entry, DictConfig) else None
    return key if name is None else name


def experiment_presets() -> dict[str, Path]:
    """{NAME: path} of every `*.yaml` in experiments/ and its subfolders (`experiments/mnist1d/x.yaml` is
    `+experiment=x`); two files with one name are a ConfigError naming both."""
    presets: dict[str, Path] = {}
    for path in sorted(EXPERIMENTS_DIR.rglob("*.yaml")):
        if path.stem in presets:
            raise ConfigError(f"two experiment presets are named '{path.stem}': {presets[path.stem]} and {path}; "
                              "rename one (+experiment=NAME takes the file name without its folder)")
        presets[path.stem] = path
    return dict(sorted(presets.items()))


def chosen(group: str, overrides) -> str | None:
    """The option of config group `group` ("data", "hydra/sweeper") that a command line (Hydra's parsed
    `overrides`) picks: its own `group=NAME`, else what a `+experiment=` / `+hparams_search=` preset named
    there overrides, else conf/config.yaml's default; None for a sweep over options or no choice."""
    for o in overrides:
        if o.key_or_group == group:
            return None if o.is_sweep_override() else str(o.value())
    for o in overrides:
        if o.key_or_group in ("experiment", "hparams_search") and not o.is_sweep_override():
            path = experiment_presets().get(str(o.value())) if o.key_or_group == "experiment" \
                else CONF_DIR / o.key_or_group / f"{o.value()}.yaml"
            found = path and path.is_file() and _preset_choice(path, group)
            if found:
                return found
    return _preset_choice(CONF_DIR / "config.yaml", group)


def _preset_choice(path: Path, group: str, depth: int = 0) -> str | None:
    """What the defaults list of YAML file `path` picks for `group` (its own entries win over the presets
    it includes: `- other_preset`, `- /experiment: name`)."""
    included = []
    for entry in OmegaConf.to_container(OmegaConf.load(path)).get("defaults") or []:
        items = entry.items() if isinstance(entry, dict) else [(None, entry)]
        for key, value in items:
            name = key and key.removeprefix("override ").strip().lstrip("/")
            if name == group:
                return str(value)
            if name == "experiment" or (key is None and value != "_self_" and path.parent != CONF_DIR):
                included.append(experiment_presets().get(str(value)))
    for preset in included:
        found = preset and depth < 8 and _preset_choice(preset, group, depth + 1)
        if found:
            return found
    return None


def check_override_keys(overrides) -> None:
    """ConfigError naming the closest key for an override of a plugin's field that the chosen plugin does
    not have (`data.nois=0.1` -> "data.nois: unknown key; closest: noise"; `callbacks.early_stopping.patiense`
    likewise, for an entry named as its callback), before Hydra's raw error."""
    from hydra.core.override_parser.types import OverrideType

    for o in overrides:
        check_moved(o.key_or_group)
        group, _, field = o.key_or_group.partition(".")
        if group == "callbacks" and "." in field and o.type != OverrideType.DEL:  # callbacks.<entry>.<argument>
            entry, _, field = field.partition(".")
            if o.type == OverrideType.CHANGE and not any(x.key_or_group in ("experiment", "hparams_search")
                                                         for x in overrides):
                _check_entry(entry, chosen("callbacks", overrides), o.input_line)
            if entry in callbacks and field.split(".")[0] != "name":
                _check_key(f"callbacks.{entry}", field, {"name", *callbacks.defaults(entry)}, f"callback '{entry}'")
            continue
        change = o.type == OverrideType.CHANGE  # not +key (adds), ++key, ~key
        if change and "/" not in group and group not in (*GROUPS, "hydra", "callbacks", "experiment", "hparams_search"):
            _check_path(o.key_or_group, overrides)
        name = chosen(group, overrides) if group in GROUPS and field and change else None
        if name is None or name not in GROUPS[group]:
            continue
        yaml = CONF_DIR / group / f"{name}.yaml"
        keys = {"name", *GROUPS[group].defaults(name), *(OmegaConf.load(yaml).keys() if yaml.is_file() else ())}
        _check_key(group, field, keys, f"{group}={name}")


# keys that moved, with where to: an old key is a one-line error naming the new one
MOVED = {"trainer.early_stopping": "callbacks.early_stopping (callbacks=early_stopping, or "
                                   "+callbacks.early_stopping.patience=N; `enabled` is gone: the entry is the switch)",
         "trainer.checkpoint_every": "callbacks.model_checkpoint.every_epochs",
         "trainer.checkpoint_dir": "callbacks.model_checkpoint.directory"}


def check_moved(key: str) -> None:
    """ConfigError naming the new key when `key` is (under) a key that moved."""
    for old, new in MOVED.items():
        if key == old or key.startswith(old + "."):
            raise ConfigError(f"{key}: this key moved to {new}")


def _check_path(key: str, overrides) -> None:
    """ConfigError naming the closest key for an override of a key that neither conf/config.yaml nor the
    chosen option of a YAML group (trainer, model, tracking, ...) has (`optimzer.lr`, `trainer.epoch`), where
    Hydra prints "Key ... is not in struct" over several lines; a new key takes `+`."""
    root = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml"))
    groups = {next(iter(e)) for e in root.pop("defaults") if isinstance(e, dict)}
    head, *rest = key.split(".")
    node: Any = {**root, **dict.fromkeys(groups | set(GROUPS) | set(FILE_GROUPS) | {"hydra"})}
    if head in groups and head not in GROUPS:
        option = chosen(head, overrides)
        yaml = CONF_DIR / head / f"{option}.yaml"
        node = {head: OmegaConf.to_container(OmegaConf.load(yaml)) if option and yaml.is_file() else None}
    for depth, part in enumerate([head, *rest]):
        if not isinstance(node, dict):
            return
        if part not in node:
            _check_key(".".join([head, *rest][:depth]), part, set(node),
                       f"{head}={chosen(head, overrides)}" if depth and head in groups else "the config")
        node = node[part]


def callback_entries(option: str, depth: int = 0) -> set[str]:
    """The entries of conf/callbacks/<option>.yaml, those of the options its defaults list includes too."""
    node = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "callbacks" / f"{option}.yaml")) or {}
    entries = {k for k in node if k != "defaults"}
    for included in node.get("defaults") or []:
        if isinstance(included, str) and included != "_self_" and depth < 8:
            entries |= callback_entries(included, depth + 1)
    return entries


def _check_entry(entry: str, option: str | None, override: str) -> None:
    """ConfigError for `callbacks.<entry>.ARG=V` when the chosen callbacks option has no such entry (Hydra's
    error says "not in struct"): adding one takes a `+`; a misspelt name gets the closest entry or callback."""
    import difflib

    if option is None or option not in file_options("callbacks"):
        return
    entries = callback_entries(option)
    if entry in entries:
        return
    close = difflib.get_close_matches(entry, sorted(entries | set(callbacks.names())), n=1, cutoff=0.6)
    if entry in callbacks or not close:
        fix = f"add it with +{override}" if entry in callbacks else \
            f"registered callbacks: {', '.join(callbacks.names())}"
    else:
        fixed = override.replace(f"callbacks.{entry}.", f"callbacks.{close[0]}.", 1)
        fix = f"closest: {close[0]}" + ("" if close[0] in entries else f" (add it with +{fixed})")
    raise ConfigError(f"{override.split('=')[0]}: callbacks={option} has no entry '{entry}' "
                      f"(its entries: {', '.join(sorted(entries)) or 'none'}); {fix}")


def _check_key(prefix: str, field: str, keys: set, what: str) -> None:
    import difflib

    key = field.split(".")[0]
    if key not in keys:
        close = difflib.get_close_matches(key, sorted(keys), n=1, cutoff=0.5)
        raise ConfigError(f"{prefix}{'.' if prefix else ''}{key}: unknown key of {what}; "
                          + (f"closest: {close[0]}" if close else f"its keys: {', '.join(sorted(keys))}"))


# Hydra options whose plugin comes with an extra: (group, option) -> (module it needs, extra)
EXTRAS = {("hydra/launcher", "joblib"): ("hydra_plugins.hydra_joblib_launcher", "sweep"),
          ("hydra/sweeper", "optuna"): ("optuna", "sweep"),
          ("hydra/launcher", "ray_cluster"): ("hydra_plugins.hydra_ray_launcher", "ray"),
          ("hydra/launcher", "ray"): ("hydra_plugins.hydra_ray_launcher", "ray"),
          ("hydra/launcher", "slurm"): ("hydra_plugins.hydra_submitit_launcher", "slurm"),
          ("hydra/launcher", "submitit_slurm"): ("hydra_plugins.hydra_submitit_launcher", "slurm"),
          ("hydra/launcher", "submitit_local"): ("hydra_plugins.hydra_submitit_launcher", "slurm")}


def check_extras(overrides) -> None:
    """ConfigError with the `pip install` to run when the launcher or sweeper a command line picks
    (directly or through a preset) needs a package that is not installed."""
    from importlib.util import find_spec

    for group in ("hydra/launcher", "hydra/sweeper"):
        option = chosen(group, overrides)
        module, extra = EXTRAS.get((group, option), (None, None))
        try:
            found = module is None or find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            raise ConfigError(f"{group}={option} needs the '{extra}' extra ({module} is not installed): "
                              f"pip install -e '.[{extra}]'")


def hydra_config():
    """The running Hydra job's config (`hydra.*`), or None outside a Hydra app (e.g. `train(cfg)` in a test)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def absolute_sqlite(uri: str | None, cwd: str | Path) -> str | None:
    """`uri` with a relative SQLite path (`sqlite:///x.db`) made absolute from `cwd`; other URIs unchanged."""
    if uri and uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{Path(cwd, uri[len('sqlite:///'):]).resolve()}"
    return uri


def kwargs(node: DictConfig) -> dict:
    """A group node as constructor keyword arguments (everything but `name`)."""
    d = OmegaConf.to_container(node, resolve=True)
    d.pop("name", None)
    return d


VOLATILE = ("tracking", "trainer.progress", "trainer.resume", "callbacks.model_checkpoint", "callbacks.profiler",
            "plugins.check", "hydra")


def config_hash(cfg: DictConfig) -> str:
    """sha256 (16 hex digits) of the resolved config without the keys that do not change the result
    (`VOLATILE`): two runs with the same hash train the same model on the same data."""
    import hashlib
    import json

    items = {k: v for k, v in flatten(cfg).items() if not k.startswith(VOLATILE)}
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:16]


def flatten(cfg: DictConfig | dict, prefix: str = "") -> dict[str, Any]:
    """{"optimizer.lr": 0.001, "model.hidden": [128], ...} from a nested config."""
    d = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
