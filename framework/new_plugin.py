"""Scaffold: `python -m framework.new_plugin KIND NAME [--dir DIR]` writes DIR/NAME.py for any of the nine kinds.

KIND is one of activation, loss, optimizer, initializer, scheduler, dataset, metric, backend, callback. The file
registers NAME, documents the formula (derivative, update rule) and shapes, and implements a placeholder
that passes `python -m framework.check_plugins` as generated. Every line to replace is marked TODO.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from framework.errors import UnknownNameError
from framework.registry import KINDS

SCAFFOLDS = Path(__file__).resolve().parent / "extend" / "scaffolds"   # one file per kind, registered as my_<kind>


def _text(kind: str, name: str, folder: Path) -> str:
    """The `kind` scaffold registering `name` (its class: `name` in CamelCase), its usage lines naming `folder`."""
    text = (SCAFFOLDS / f"{kind}.py").read_text()
    camel = "".join(part.capitalize() for part in name.split("_"))
    return text.replace(f"my_{kind}", name).replace(f"My{kind.capitalize()}", camel).replace("<dir>", str(folder))


def write_plugin(kind: str, name: str, folder=".") -> Path:
    """Write `folder`/`name`.py from the `kind` scaffold; refuses unknown kinds, taken names and existing files."""
    if kind not in KINDS:
        raise UnknownNameError("plugin kind", kind, list(KINDS))
    if not (name.isidentifier() and name == name.lower()):
        raise ValueError(f"plugin name {name!r} must be lowercase letters, digits and '_' (e.g. my_{kind})")
    if name in KINDS[kind]:
        raise ValueError(f"{kind} '{name}' is already registered; pick another name")
    folder = Path(folder).expanduser().resolve()
    path = folder / f"{name}.py"
    if path.exists():
        raise FileExistsError(f"{path} exists; pick another name or folder")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(_text(kind, name, folder))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m framework.new_plugin", description=__doc__.split("\n\n")[1])
    parser.add_argument("kind", metavar="KIND", help=", ".join(KINDS))
    parser.add_argument("name", metavar="NAME", help="registered name = Hydra option, e.g. my_act")
    parser.add_argument("--dir", default=".", help="folder to write NAME.py into (default: .)")
    args = parser.parse_args(argv)
    try:
        path = write_plugin(args.kind, args.name, args.dir)
    except UnknownNameError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))
    print(f"wrote {path}\ncheck it: python -m framework.check_plugins {args.name} --paths {path.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
