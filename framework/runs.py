"""`python -m framework.runs`: the runs table, see `framework.tracking.runs`."""
from .tracking.runs import *  # noqa: F401,F403
from .tracking.runs import main

if __name__ == "__main__":
    main()
