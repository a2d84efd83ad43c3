"""Conformance checker: `python -m framework.check_plugins [NAME ...] [--paths DIR]... [--plot DIR]`.

Runs every check of `framework.extend.conformance` on the named plugins of every kind (a name registered in
two kinds, like the loss and the metric `mse`, checks both) - by default all registered ones, or with
`--paths` the ones defined in those folders - and prints one line per check (kind, name, check,
ok/FAIL, figure) and a summary. `--plot DIR` also writes
DIR/<kind>_<name>.svg for activations and losses. Exit status 0 if all pass, 1 if any check fails or a
plugin fails to import, 2 for usage errors (unknown name, missing folder).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from framework import discovery
from framework.errors import ConfigError, UnknownNameError
from framework.extend import conformance
from framework.extend.pictures import KINDS as PLOT_KINDS
from framework.extend.pictures import plot_plugin
from framework.registry import KINDS


def check(kind: str, name: str, skip: tuple[str, ...] = ()) -> list[str]:
    """Every conformance check but those in `skip` of plugin `name` of `kind` ("activation", "loss",
    "optimizer", "initializer", "scheduler", "dataset", "metric", "backend", "callback"): one message
    "<check>: <reason>" per failed check, [] when it conforms. An unknown kind or name raises UnknownNameError."""
    if kind not in KINDS:
        raise UnknownNameError("plugin kind", kind, sorted(KINDS))
    registry = KINDS[kind]
    registry.get(name)
    outcomes = (conformance.run(registry, name, c) for c in conformance.CHECKS[kind] if c not in skip)
    return [f"{o.check}: {o.figure}" for o in outcomes if not o.ok]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m framework.check_plugins", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help="registered names to check (default: all)")
    parser.add_argument("--paths", action="append", default=[], metavar="DIR",
                        help="plugin folder or .py file to load first (like config plugins.paths); "
                             f"repeat it or join several with '{os.pathsep}'")
    parser.add_argument("--plot", metavar="DIR", help="write an SVG per activation and loss into DIR")
    args = parser.parse_args(argv)
    try:
        files = discovery.load_paths([p for arg in args.paths for p in arg.split(os.pathsep) if p])
        targets = _select(args.names, files if args.paths else None)
    except discovery.PluginImportError as e:
        print(f"FAIL {e}")
        return 1
    except ConfigError as e:
        parser.error(str(e))
    if not targets:
        print(f"FAIL no plugin is defined in {', '.join(args.paths)}")
        return 1
    outcomes = []
    for kind, name in targets:
        for check in conformance.CHECKS[kind]:
            outcomes.append(conformance.run(KINDS[kind], name, check))
            print(outcomes[-1], flush=True)
        if args.plot and kind in PLOT_KINDS:
            outcomes.append(_plot(kind, name, Path(args.plot)))
            print(outcomes[-1], flush=True)
    failed = [o for o in outcomes if not o.ok]
    print(f"summary: {_count(len(targets), 'plugin')}, {_count(len(outcomes), 'check')}, {len(failed)} failed")
    for o in failed:
        print(f"FAIL {o.kind} '{o.name}' {o.check}: {o.figure}")
    return 1 if failed else 0


def _select(names, files) -> list[tuple[str, str]]:
    """(kind, name) pairs: the named plugins, else those defined in `files` (if not None), else all."""
    registered = [(kind, name) for kind, reg in KINDS.items() for name in reg.names()]
    known = sorted({name for _, name in registered})
    for name in names:
        if name not in known:
            raise UnknownNameError("plugin", name, known)
    if names:
        return [(kind, name) for kind, name in registered if name in names]
    if files is not None:
        return [(kind, name) for kind, name in registered if _source(KINDS[kind].get(name)) in files]
    return registered


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _source(obj) -> Path | None:
    file = getattr(sys.modules.get(obj.__module__), "__file__", None)
    return Path(file).resolve() if file else None


def _plot(kind: str, name: str, folder: Path) -> conformance.Outcome:
    try:
        path = plot_plugin(kind, name, folder / f"{kind}_{name}.svg")
        return conformance.Outcome(kind, name, "plot", True, str(path))
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        return conformance.Outcome(kind, name, "plot", False, f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    sys.exit(main())
