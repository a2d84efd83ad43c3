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
from framework.registry import ALL, activations, metrics

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "conf"
EXPERIMENTS_DIR = ROOT / "experiments"

# config group -> registry: every registry's group but metrics (a list under trainer.metrics), and
# output_activation, which draws on the activations too
GROUPS = {**{g: r for g, r in ALL.items() if r is not metrics}, "output_activation": activations}


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


VOLATILE = ("tracking", "trainer.progress", "trainer.resume", "trainer.checkpoint_dir", "plugins.check", "hydra")


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
