"""Bus transports: MQTT (paho, production and integration tests), in-memory (unit tests)."""

from shared.transport.base import Handler, Transport, matches
from shared.transport.dead_letters import DeadLetter, DeadLetterStore
from shared.transport.memory import InMemoryBus, InMemoryTransport
from shared.transport.mqtt import BrokerUnavailable, MqttSecurity, MqttTransport, Will, broker_answers
from shared.transport.outbox import Outbox
from shared.transport.router import Router

__all__ = [
    "BrokerUnavailable", "DeadLetter", "DeadLetterStore", "Handler", "InMemoryBus", "InMemoryTransport",
    "MqttSecurity", "MqttTransport", "Outbox", "Router", "Transport", "Will", "broker_answers", "matches",
]
