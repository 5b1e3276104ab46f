"""Small helpers for files that must survive a power cut."""
from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a new or renamed directory entry durable: the entry lives in the folder,
    so the folder itself must be fsynced (fsync of the file alone is not enough)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
