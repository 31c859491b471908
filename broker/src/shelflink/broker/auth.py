"""Username/password authentication for the embedded broker, as an amqtt auth plugin.

amqtt loads plugins by dotted path and hands each one its ``Config`` dataclass, filled
from the broker configuration; ``EmbeddedBroker`` writes that configuration.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

PLUGIN_PATH = f"{__name__}.UserTableAuthPlugin"


class UserTableAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no types
    """Accept a client whose username and password match the table, or a client without a
    username when anonymous access is allowed.

    Unlike amqtt's own ``AnonymousAuthPlugin``, this never marks a session anonymous: amqtt
    drops the QoS 1/2 messages it would queue for an anonymous offline session with
    clean_session=False, and Mosquitto (what runs in production) keeps them. Keeping
    them here too means code that works against the embedded broker behaves the same
    against the real one.
    """

    @dataclass
    class Config:
        users: dict[str, str] = field(default_factory=dict)
        allow_anonymous: bool = True

    async def authenticate(self, *, session: Session) -> bool:
        config: UserTableAuthPlugin.Config = self.config
        username: str | None = session.username
        if not username:
            return config.allow_anonymous
        if not config.users:
            # With no table a username identifies a client but proves nothing, as with
            # Mosquitto's allow_anonymous and no password file.
            return config.allow_anonymous
        expected = config.users.get(username)
        if expected is None:
            return False
        password: str = session.password or ""
        return hmac.compare_digest(password.encode(), expected.encode())
