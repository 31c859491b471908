"""Stream operators shared by gateway and cloud: watermarks, windows, shelf and fridge features."""

from shelflink.stream._version import __version__

__all__ = ["__version__"]
