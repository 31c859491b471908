"""On-gateway intelligence: the stock-out model and the cold-chain rules, with no I/O of their own."""

from shelflink.edge._version import __version__

__all__ = ["__version__"]
