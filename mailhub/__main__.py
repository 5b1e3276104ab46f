"""``python -m mailhub``: the same as the ``mailhub`` command."""
from mailhub.cli import main

if __name__ == "__main__":
    main()
