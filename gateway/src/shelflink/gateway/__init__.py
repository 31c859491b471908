"""The Shelflink store gateway: southbound adapters, device registry, durable buffer."""

from shelflink.gateway._version import __version__
from shelflink.gateway.app import Gateway
from shelflink.gateway.config import ConfigError, GatewayConfig, load_config

__all__ = ["ConfigError", "Gateway", "GatewayConfig", "__version__", "load_config"]
