"""Plugin discovery: built-ins under `plugins/`, user folders, then installed entry points.

Order: 1. every module of the built-in `plugins` package; 2. every `*.py` in the folders named by
`FRAMEWORK_PLUGIN_PATH` (os.pathsep-separated) or passed to `load_paths` (config `plugins.paths`);
3. packages declaring the entry-point group `framework.plugins`.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from importlib.metadata import entry_points
from pathlib import Path

from .errors import ConfigError

ENV_VAR = "FRAMEWORK_PLUGIN_PATH"
ENTRY_POINT_GROUP = "framework.plugins"
_loaded = False
_loaded_paths: set[Path] = set()


class PluginImportError(ConfigError):
    """A plugin file or package failed to import."""


def load_plugins() -> None:
    """Import every plugin source once (idempotent, cheap after the first call)."""
    global _loaded
    if _loaded:
        return
    _loaded = True  # set first: plugin modules call registries while importing
    import plugins

    for info in pkgutil.iter_modules(plugins.__path__, plugins.__name__ + "."):
        importlib.import_module(info.name)
    env = os.environ.get(ENV_VAR, "")
    load_paths([p for p in env.split(os.pathsep) if p])
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as e:  # noqa: BLE001 - reported with its origin
            raise PluginImportError(
                f"plugin entry point '{ep.name} = {ep.value}' failed to import: {type(e).__name__}: {e}"
            ) from e


def load_paths(paths) -> list[Path]:
    """Import every `*.py` file in each folder (or a single .py file) of `paths`; returns the files."""
    load_plugins()
    files = []
    for raw in paths or []:
        path = Path(raw).expanduser().resolve()
        if not path.exists():
            raise ConfigError(f"plugin path '{raw}' does not exist; fix plugins.paths or ${ENV_VAR}")
        files += sorted(path.glob("*.py")) if path.is_dir() else [path]
    for file in files:
        if file in _loaded_paths:
            continue
        _loaded_paths.add(file)
        name = f"framework_user_plugins.{file.stem}_{abs(hash(str(file))) % 10**8}"
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001 - reported with the file
            _loaded_paths.discard(file)
            del sys.modules[name]
            raise PluginImportError(
                f"plugin file '{file}' failed to import: {type(e).__name__}: {e}"
            ) from e
    return files
