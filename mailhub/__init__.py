"""mailhub: the secure submission relay of the city's email system."""

__version__ = "0.1.0"
