"""Which fields are secret or personal, read from the contract's descriptors.

The ``cqrs.privacy.v1`` options on the messages of ``cqrs/events/v1`` (one
message per event type, named by its ``event_type`` option) and on
``cqrs.eventstore.v1.UserState`` (the snapshot's state) are the only
statement of what is protected: nothing here names a field. A field added to
a message with an annotation is covered everywhere without a code change.

Invariants: every event message carries an ``event_type`` option, unique
across the package; a personal field's subject is an envelope field
(``aggregate_id`` for events, ``user_id`` for a state).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from cqrs.events.v1 import user_events_pb2
from cqrs.eventstore.v1 import event_store_pb2
from cqrs.privacy.v1 import privacy_pb2
from google.protobuf.descriptor import Descriptor, FileDescriptor

__all__ = [
    "EVENT_PRIVACY",
    "STATE_PRIVACY",
    "MessagePrivacy",
    "event_messages",
    "privacy_of",
]

DEFAULT_SUBJECT: Final = "aggregate_id"


@dataclass(frozen=True, slots=True)
class MessagePrivacy:
    """The protected fields of one message.

    ``personal`` maps each personal field to the envelope field naming its
    subject (whose data key encrypts it); ``secret`` lists the secret fields.
    A field is never both.
    """

    name: str
    secret: frozenset[str]
    personal: Mapping[str, str]
    version: int = 1

    @property
    def is_plain(self) -> bool:
        """True when nothing in the message is protected."""
        return not self.secret and not self.personal


def privacy_of(descriptor: Descriptor) -> MessagePrivacy:
    """The protected fields of ``descriptor``, from its fields' ``privacy`` options."""
    secret: set[str] = set()
    personal: dict[str, str] = {}
    for fd in descriptor.fields:
        option = fd.GetOptions().Extensions[privacy_pb2.privacy]
        if option.sensitivity == privacy_pb2.SENSITIVITY_SECRET:
            secret.add(fd.name)
        elif option.sensitivity == privacy_pb2.SENSITIVITY_PERSONAL:
            personal[fd.name] = option.subject_field or DEFAULT_SUBJECT
    version = descriptor.GetOptions().Extensions[privacy_pb2.event_version] or 1
    return MessagePrivacy(
        descriptor.full_name, frozenset(secret), MappingProxyType(personal), version
    )


def event_messages(file: FileDescriptor) -> dict[str, Descriptor]:
    """Each event message of ``file`` by its ``event_type`` option (ValueError if one lacks it)."""
    found: dict[str, Descriptor] = {}
    for descriptor in file.message_types_by_name.values():
        event_type = descriptor.GetOptions().Extensions[privacy_pb2.event_type]
        if not event_type:
            raise ValueError(f"{descriptor.full_name} has no (cqrs.privacy.v1.event_type) option")
        if event_type in found:
            raise ValueError(f"event type {event_type!r} is declared twice")
        found[event_type] = descriptor
    return found


EVENT_MESSAGES: Final[Mapping[str, Descriptor]] = MappingProxyType(
    event_messages(user_events_pb2.DESCRIPTOR)
)
"""The contract's message of each event type, by wire name."""
EVENT_PRIVACY: Final[Mapping[str, MessagePrivacy]] = MappingProxyType(
    {event_type: privacy_of(d) for event_type, d in EVENT_MESSAGES.items()}
)
"""The protected fields of each event type, by wire name."""
STATE_PRIVACY: Final = privacy_of(event_store_pb2.UserState.DESCRIPTOR)
"""The protected fields of a user's state (snapshots)."""
