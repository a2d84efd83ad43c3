"""Plugin discovery: installed entry points (the built-ins first), then user folders.

Order: 1. the modules named by this project's own entry points in the group `framework.plugins`
(pyproject.toml: `builtins = "plugins"`, the built-in `plugins` package, whose `__init__` imports its
modules, as a third-party package does); 2. every `*.py` in the folders named by `FRAMEWORK_PLUGIN_PATH`
(os.pathsep-separated); 3. every module named by another installed package's entry points in that group.
Config `plugins.paths` adds folders through `load_paths` (train() calls it; the train CLI also calls it
before Hydra composes). Importing a module is what registers its plugins; a module that fails to import
raises `PluginImportError` naming the file (or entry point), the line and the exception - on this and
every later lookup, never a half-loaded registry. The core imports no plugin by name.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path

from framework.errors import ConfigError

ENV_VAR = "FRAMEWORK_PLUGIN_PATH"
ENTRY_POINT_GROUP = "framework.plugins"
DISTRIBUTION = "framework"  # this project: its entry points in ENTRY_POINT_GROUP name the built-ins


class PluginImportError(ConfigError):
    """A plugin file or package failed to import."""


# Called with a module's name when that module failed to import, to drop what it registered.
# framework.registry adds its hook here (so discovery never imports the registries: no cycle).
forget_hooks: list = []


class _State:
    """What this process has loaded; tests swap in a fresh one."""

    def __init__(self):
        self.started = False
        self.error: ConfigError | None = None
        self.files: set[Path] = set()
        self.builtin: tuple[str, ...] = ()  # the modules the built-in entry points name


_state = _State()


def load_plugins() -> None:
    """Import every plugin source once; cheap after the first call, re-raises a failure every call."""
    if _state.error is not None:
        raise _state.error
    if _state.started:
        return
    _state.started = True  # set first: plugin modules call registries while importing
    try:
        eps = list(entry_points(group=ENTRY_POINT_GROUP))
        own = [ep for ep in eps if ep.dist is not None and ep.dist.name == DISTRIBUTION]
        if not own:
            raise ConfigError(f"no built-in plugins: the '{DISTRIBUTION}' package's entry points in group "
                              f"'{ENTRY_POINT_GROUP}' are not installed; run `pip install -e .` in the project")
        _state.builtin = tuple(ep.module for ep in own)
        _load(own)
        load_paths([p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p])
        _load([ep for ep in eps if ep not in own])
    except ConfigError as e:
        _state.error = e
        raise


def _load(eps) -> None:
    """Import the module of each entry point in `eps`."""
    for ep in eps:
        with _reporting(f"plugin entry point '{ep.name} = {ep.value}'"):
            ep.load()


def builtin(obj) -> bool:
    """Whether class or function `obj` is a built-in plugin (defined under a module the built-in entry points
    name, or in the framework itself: the engine's callbacks)."""
    load_plugins()
    module = getattr(obj, "__module__", "") or ""
    return any(module == m or module.startswith(m + ".") for m in (*_state.builtin, "framework"))


def load_paths(paths) -> list[Path]:
    """Import every `*.py` in each folder of `paths` (a folder or .py file, or a list of them; each
    file once per process). Returns the files named by `paths`, in import order."""
    load_plugins()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = []
    for raw in paths or []:
        path = Path(raw).expanduser().resolve()
        if not path.exists():
            raise ConfigError(f"plugin path '{raw}' does not exist; fix plugins.paths or ${ENV_VAR}")
        files += sorted(path.glob("*.py")) if path.is_dir() else [path]
    for file in files:
        if file not in _state.files:
            _import_file(file)
            _state.files.add(file)
    return files


def _import_file(file: Path) -> None:
    """Execute `file` as a fresh module under a name unique to its path; if it fails, nothing it
    registered stays registered."""
    name = f"framework_user_plugins.{file.stem}_{hashlib.sha1(str(file).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with _reporting(f"plugin file '{file}'", file):
            spec.loader.exec_module(module)
    except PluginImportError:
        del sys.modules[name]
        for forget in forget_hooks:
            forget(name)
        raise


@contextmanager
def _reporting(what: str, file: Path | None = None):
    """Turn any exception into a PluginImportError naming `what`, the line and the exception."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - reported with its origin
        raise PluginImportError(f"{what} failed to import{_line(e, file)}: {type(e).__name__}: {e}") from e


def _line(e: Exception, file: Path | None) -> str:
    """' (line N)' of the deepest frame of `e` in `file`; with file None, ' (FILE, line N)' of the
    deepest frame in any real file (not importlib's frozen ones)."""
    tb = traceback.extract_tb(e.__traceback__)
    if file is not None:
        lines = [f.lineno for f in tb if f.filename == str(file)]
        return f" (line {lines[-1]})" if lines else ""
    frames = [f for f in tb if not f.filename.startswith("<") and f.filename != __file__]
    return f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
