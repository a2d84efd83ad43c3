"""Registries: one per extension point; the registered name is the Hydra option and MLflow value.

    from framework.registry import activations
    @activations.register("swish")
    class Swish(ElementwiseActivation): ...
    activations.create("swish", beta=2.0)

A data set is a function; it names its reference loader (compared row for row by
`python -m framework.check_plugins`) in `register`: `@datasets.register("digits",
reference="sklearn.datasets.load_digits")`, which sets the function's `reference` attribute (a class
plugin declares `reference = "..."` in its body instead; see `framework.interfaces.Referenced`).
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from framework import discovery
from framework.errors import ConfigError, UnknownNameError


class Registry:
    """Maps names to classes (or factories) of one kind."""

    def __init__(self, kind: str, group: str | None = None):
        self.kind = kind              # singular, for messages: "activation"
        self.group = group or kind    # Hydra config group name
        self._entries: dict[str, Any] = {}

    def register(self, name: str | None = None, *, override: bool = False, reference: str | None = None) -> Callable:
        """Decorator: `@registry.register("name")`; `override=True` replaces an existing entry; `reference`
        sets the entry's `reference` attribute (the dotted name of what it is compared with)."""

        def decorate(obj):
            key = name or getattr(obj, "name", None) or obj.__name__.lower()
            if not isinstance(key, str) or not key.replace("_", "a").isalnum():
                raise ConfigError(f"{self.kind} name {key!r} must be letters, digits and '_'")
            if key in self._entries and self._entries[key] is not obj and not override:
                raise ConfigError(
                    f"{self.kind} '{key}' is already registered by "
                    f"{_where(self._entries[key])}; pick another name or pass override=True"
                )
            if isinstance(obj, type):
                obj.name = key
            if reference is not None:
                obj.reference = reference
            self._entries[key] = obj
            return obj

        return decorate

    def _load(self) -> None:
        discovery.load_plugins()

    def names(self) -> list[str]:
        """Sorted registered names."""
        self._load()
        return sorted(self._entries)

    def get(self, name: str):
        """The registered class; an unknown name lists known names and the closest match."""
        self._load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, name, sorted(self._entries)) from None

    def create(self, name: str, **kwargs):
        """Instantiate `name` with keyword arguments; bad arguments name the accepted ones."""
        cls = self.get(name)
        try:
            _signature(cls).bind(**kwargs)
        except TypeError as e:
            raise ConfigError(
                f"{self.kind} '{name}': {e}. Accepted arguments: {', '.join(self.defaults(name)) or '(none)'}"
            ) from None
        return cls(**kwargs)

    def defaults(self, name: str) -> dict[str, Any]:
        """Constructor keyword arguments and their defaults (`None` where no default is set)."""
        return {p.name: None if p.default is p.empty else p.default for p in _arguments(self.get(name))}

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"


@functools.lru_cache(maxsize=None)
def _signature(obj) -> inspect.Signature:
    """inspect.signature, once per class: it is slow, and for a class without its own __init__ it
    leaves cyclic garbage behind that a per-epoch `create` would pile up."""
    return inspect.signature(obj)


def _arguments(obj) -> list[inspect.Parameter]:
    return [p for p in _signature(obj).parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def argument_names(obj) -> list[str]:
    """The keyword arguments of class or factory `obj`: what a config sets."""
    return [p.name for p in _arguments(obj)]


def _where(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)}"


activations = Registry("activation")
losses = Registry("loss")
optimizers = Registry("optimizer")
backends = Registry("backend")
initializers = Registry("initializer")
schedulers = Registry("scheduler")
datasets = Registry("dataset", group="data")
metrics = Registry("metric")
callbacks = Registry("callback", group="callbacks")  # entries of the `callbacks` group (framework.Callback classes)

REGISTRIES = (activations, losses, optimizers, backends, initializers, schedulers, datasets, metrics, callbacks)
KINDS = {r.kind: r for r in REGISTRIES}   # "activation" -> activations, ...: the one kind -> registry map
ALL = {r.group: r for r in REGISTRIES}    # Hydra group ("data") -> registry


def _forget_module(module: str) -> None:
    """Drop what a module that failed to import had registered, so the fixed file loads cleanly."""
    for registry in REGISTRIES:
        for key in [k for k, obj in registry._entries.items() if getattr(obj, "__module__", None) == module]:
            del registry._entries[key]


discovery.forget_hooks.append(_forget_module)
