"""Shared test helpers: compose the project's Hydra config in-process."""
from __future__ import annotations

from hydra import compose, initialize_config_dir

from framework.config import CONF_DIR, GROUPS, register_configs

QUIET = ["tracking.enabled=false", "trainer.progress=none"]
_registered: set = set()   # (group, name) pairs in Hydra's ConfigStore: stored once per test session


def make_cfg(*overrides: str):
    """The composed config (like `python -m framework.train <overrides>`), tracking and progress off."""
    options = {(group, name) for group, registry in GROUPS.items() for name in registry.names()}
    if not options <= _registered:  # the first call, or a test registered a plugin since
        register_configs()
        _registered.update(options)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=[*QUIET, *overrides])
