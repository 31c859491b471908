"""Shelflink's embedded MQTT broker and the tools to check and measure brokers.

``EmbeddedBroker`` runs amqtt in-process for the zero-install default; ``python -m
shelflink.broker`` runs it as its own process; ``python -m shelflink.broker.probe``
measures any broker (see docs/brokers.md).
"""

from shelflink.broker._version import __version__
from shelflink.broker.embedded import EmbeddedBroker
from shelflink.broker.errors import (
    BrokerConnectError,
    BrokerError,
    BrokerReentrantError,
    BrokerStartError,
    BrokerUnreachableError,
)
from shelflink.broker.process import BrokerProcess
from shelflink.broker.readiness import wait_for_broker
from shelflink.broker.throughput import ThroughputReport, measure_throughput

__all__ = [
    "BrokerConnectError",
    "BrokerError",
    "BrokerProcess",
    "BrokerReentrantError",
    "BrokerStartError",
    "BrokerUnreachableError",
    "EmbeddedBroker",
    "ThroughputReport",
    "__version__",
    "measure_throughput",
    "wait_for_broker",
]
