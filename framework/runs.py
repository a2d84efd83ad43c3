"""`python -m framework.runs`: the runs table, see `framework.tracking.table`."""
from framework.tracking.table import main

if __name__ == "__main__":
    main()
