"""`python -m framework.runs`: the runs table, see `framework.tracking.table` (a bad `--uri`: one line, exit 1)."""
import sys

from framework.errors import FrameworkError
from framework.tracking.table import main as table


def main(argv=None, console=None) -> None:
    try:
        table(argv, console)
    except FrameworkError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
