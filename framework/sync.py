"""`python -m framework.sync [PATH ...] [--uri URI] [--watch]`: see `framework.tracking.sync`."""
from .tracking.sync import main

if __name__ == "__main__":
    main()
