"""Shared test helpers: compose the project's Hydra config in-process (local servers: benchmarks/servers.py)."""
from __future__ import annotations

import copy

from hydra import initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl  # Hydra's own value-override code
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from benchmarks.servers import ENV  # noqa: F401 - the environment of the tests' subprocesses (telemetry off)
from framework.run.config import CONF_DIR, GROUPS, compose, node_for, register_configs

QUIET = ["tracking.enabled=false", "trainer.progress=none"]
_registered: dict = {}     # (group, name) -> the plugin whose option is in Hydra's ConfigStore
_composed: dict = {}       # group choices -> Hydra's composition of them (value overrides not applied)

# Each Hydra compose deep-copies its config repository and with it the ConfigStore singleton (every registered
# option as a DictConfig), a good part of a compose's time. Nothing writes through that copy (`ConfigStore.load`
# hands out copies of its nodes; tests/unit/test_helpers.py checks a compose leaves the store as it was), so in the
# tests the copy is the store itself.
ConfigStore.__deepcopy__ = lambda self, memo: self


def register() -> None:
    """Store the registered options in Hydra's ConfigStore (`register_configs`) once per test session; later,
    only the plugins a test has registered since, or put under a stored name (`override=True`, or a built-in put
    back after a test). Only the latter drops the cached compositions: none of them can select a new name (its
    compose would have failed)."""
    options = {(group, name): registry.get(name) for group, registry in GROUPS.items() for name in registry.names()}
    changed = {option for option, plugin in options.items() if _registered.get(option) is not plugin}
    if not _registered:
        register_configs()
    else:
        for group, name in changed:  # stored as register_configs stores them (not all of them again: slow)
            if not (CONF_DIR / group / f"{name}.yaml").exists():
                ConfigStore.instance().store(group=group, name=name, node=node_for(GROUPS[group], name))
    if changed & _registered.keys():
        _composed.clear()
    _registered.update(options)


def compose_all(*overrides: str, hydra: bool = False):
    """One Hydra compose of the project's config with `overrides` (`hydra`: keep the `hydra.*` node)."""
    register()
    return compose(overrides, hydra)


def make_cfg(*overrides: str):
    """The composed config (like `python -m framework.train <overrides>`), tracking and progress off.

    Hydra composes the defaults list of the group choices (the slow part), then applies the value overrides
    (`a.b=v`, `+k=v`) to the result. Here the first step runs once per set of group choices and the
    second is Hydra's own code on a copy, so the result is that of `compose_all(*QUIET, *overrides)`
    (`tests/unit/test_helpers.py`).
    """
    register()
    parsed = OverridesParser.create().parse_overrides([*QUIET, *overrides])
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        repo = GlobalHydra.instance().config_loader().repository
        composed = [o.key_or_group.startswith("hydra") or o.is_sweep_override() or repo.group_exists(o.key_or_group)
                    for o in parsed]
    choices = tuple(o.input_line for o, c in zip(parsed, composed) if c)
    if choices not in _composed:
        _composed[choices] = compose_all(*choices)
    cfg = copy.deepcopy(_composed[choices])
    ConfigLoaderImpl._apply_overrides_to_config([o for o, c in zip(parsed, composed) if not c], cfg)
    return cfg


def trained(folder, *overrides: str):
    """(trainer, folder): a model trained briefly from `make_cfg(*overrides)`, saved in the new folder `folder`
    as an MLflow run's artifacts are (weights.npz + config.yaml)."""
    import numpy as np
    from omegaconf import OmegaConf

    from framework.engine.weights import export
    from framework.train import build

    cfg = make_cfg(*overrides)
    trainer = build(cfg)
    trainer.fit()
    folder.mkdir()
    np.savez(folder / "weights.npz", **export(trainer))
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return trainer, folder

