"""Errors that tell the user what is wrong and how to fix it."""
from __future__ import annotations

import difflib


class FrameworkError(Exception):
    """Base class: every error raised on purpose by the framework."""


class ConfigError(FrameworkError, ValueError):
    """A configuration value is wrong; the message names the value and the fix."""


class UnknownNameError(ConfigError, KeyError):
    """A name that no registry entry has; lists the known names and the closest match."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        super().__init__(
            f"unknown {kind} '{name}'.{hint} Known {kind} names: {', '.join(known) or '(none)'}."
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class ShapeError(FrameworkError, ValueError):
    """Arrays whose shapes do not fit together; the message states both shapes."""


class DivergenceError(FrameworkError, FloatingPointError):
    """A loss or gradient became NaN/inf during training."""

    def __init__(self, message: str, *, step: int | None = None, param: str | None = None):
        self.step, self.param = step, param
        super().__init__(message)
