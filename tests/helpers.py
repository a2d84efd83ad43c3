"""Shared test helpers: compose the project's Hydra config in-process."""
from __future__ import annotations

from hydra import compose, initialize_config_dir

from framework.config import CONF_DIR, register_configs

QUIET = ["tracking.enabled=false", "trainer.progress=none"]


def make_cfg(*overrides: str):
    """The composed config (like `python -m framework.train <overrides>`), tracking and progress off."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=[*QUIET, *overrides])
