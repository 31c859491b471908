"""On-gateway intelligence: the stock-out model and cold-chain rules, with no I/O of their own."""

from shelflink.edge._version import __version__

__all__ = ["__version__"]
