"""`python -m framework.sync [PATH ...] [--uri URI] [--watch]`: see `framework.tracking.replay`.

The command layer: a PATH that holds no run log, or a bad `--uri` (an unwritable SQLite folder, a database
driver that is not installed), is one line and exit 1."""
import argparse
import sys
from pathlib import Path

from framework.errors import FrameworkError
from framework.tracking.replay import main as replay


def main(argv=None) -> None:
    from framework.tracking.places import check_driver, check_writable, store_uri
    from framework.tracking.runlog import JOURNAL, LOG, find_runlogs

    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("paths", nargs="*", default=["."])
    p.add_argument("--uri")
    p.add_argument("--watch", action="store_true")
    known, _ = p.parse_known_args(argv)
    try:
        uri = store_uri(known.uri) if known.uri else ""
        if uri.startswith("sqlite:///"):  # its folder is made, as training makes it
            check_writable(Path(uri[len("sqlite:///"):]).parent, "the store's folder",
                           "give a writable store with --uri")
        check_driver(uri)
        empty = [] if known.watch else [path for path in known.paths if not find_runlogs([path])]
        if empty:
            why = "no such file or folder" if not Path(empty[0]).exists() else f"no {LOG}/{JOURNAL} at or under it"
            raise FrameworkError(f"no run log under {empty[0]} ({why}); give a run folder, a sweep folder or a "
                                 "folder above them")
        replay(argv)
    except FrameworkError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as e:  # the store's file or folder (a read-only or full disk)
        print(f"error: cannot write the store {e.filename or ''}: {e.strerror or e}; give a writable store "
              "with --uri", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
