"""`python -m framework.sync [PATH ...] [--uri URI] [--watch]`: see `framework.tracking.replay`."""
from framework.tracking.replay import main

if __name__ == "__main__":
    main()
