"""The broker package's exceptions: callers catch these, never amqtt's or paho's."""

from __future__ import annotations


class BrokerError(Exception):
    """Root of every error raised by ``shelflink.broker``."""


class BrokerStartError(BrokerError):
    """The broker could not start (port taken, bad configuration, ...)."""


class BrokerReentrantError(BrokerError):
    """An ``EmbeddedBroker`` was entered while it was already running."""


class BrokerUnreachableError(BrokerError, TimeoutError):
    """Nothing accepted TCP connections at the address before the deadline."""


class BrokerConnectError(BrokerError):
    """A client could not connect: refused by the broker, or no answer in time."""
