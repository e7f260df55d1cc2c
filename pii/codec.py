"""Generic redaction and encryption of JSON payloads, driven by the contract's annotations.

One place applies the ``cqrs.privacy.v1`` options (:mod:`pii.annotations`)
to a payload or a state (a JSON object whose keys are the message's field
names):

- :func:`redact` replaces every secret value with :data:`REDACTED` (public reads);
- :meth:`PayloadCodec.seal` encrypts every non-empty personal value with the
  subject's data key (at append, before anything is stored);
- :meth:`PayloadCodec.open` decrypts them again, or gives :data:`ERASED`
  once the subject's key was destroyed.

Sealed value format: ``"pii:v1:" + base64url(nonce || AES-256-GCM ciphertext)``
with the subject's id as associated data, so a sealed value cannot be moved
to another subject's event. Everything else in the payload stays in clear:
the stored JSON remains queryable (``JSONExtractString(payload, 'role')``).

Invariants: ``open(seal(p)) == p`` while the key exists; after erasure every
personal field opens as :data:`ERASED` (values stored in clear before
encryption existed included); empty values stay empty (they hold nothing);
the input mapping is never modified. Unknown event types pass through
unchanged (the store refuses to append them).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from typing import Final

from cryptography.exceptions import InvalidTag

from pii.annotations import EVENT_PRIVACY, STATE_PRIVACY, MessagePrivacy
from pii.keystore import KeyStore

__all__ = ["ERASED", "PREFIX", "REDACTED", "PayloadCodec", "is_sealed", "redact", "redact_event"]

ERASED: Final = "[ERASED]"
"""What a personal field reads once its subject's key was destroyed."""
REDACTED: Final = "[REDACTED]"
"""What a secret field reads on every public read."""
PREFIX: Final = "pii:v1:"
_NONCE: Final = 12


class UndecryptableValue(ValueError):
    """A sealed value does not open with its subject's key (corrupt, or moved)."""


def is_sealed(value: object) -> bool:
    """Whether ``value`` is an encrypted personal value."""
    return isinstance(value, str) and value.startswith(PREFIX)


def redact(privacy: MessagePrivacy, values: Mapping[str, object]) -> dict[str, object]:
    """A copy of ``values`` with every secret field (present) replaced by :data:`REDACTED`."""
    return {k: REDACTED if k in privacy.secret else v for k, v in values.items()}


def redact_event(event_type: str, payload: Mapping[str, object]) -> dict[str, object]:
    """:func:`redact` with the privacy of ``event_type`` (a copy, unchanged if unknown)."""
    privacy = EVENT_PRIVACY.get(event_type)
    return dict(payload) if privacy is None else redact(privacy, payload)


def _subject(values: Mapping[str, object], envelope: Mapping[str, str], name: str) -> str:
    subject = envelope.get(name) or values.get(name)
    if not isinstance(subject, str) or not subject:
        raise ValueError(f"no subject {name!r} for a personal field")
    return subject


class PayloadCodec:
    """Seals and opens personal fields with the subjects' keys in ``keys``."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    @property
    def keys(self) -> KeyStore:
        return self._keys

    def seal(
        self, privacy: MessagePrivacy, values: Mapping[str, object], envelope: Mapping[str, str]
    ) -> dict[str, object]:
        """A copy of ``values`` whose personal fields are encrypted (:data:`ERASED` if the
        subject was erased already; an already sealed value is kept as is)."""
        out = dict(values)
        for name, subject_field in privacy.personal.items():
            value = out.get(name)
            if not isinstance(value, str) or not value or value.startswith(PREFIX):
                continue
            subject = _subject(values, envelope, subject_field)
            cipher = self._keys.cipher(subject, create=True)
            if cipher is None:
                out[name] = ERASED
                continue
            nonce = secrets.token_bytes(_NONCE)
            sealed = nonce + cipher.encrypt(nonce, value.encode(), subject.encode())
            out[name] = PREFIX + base64.urlsafe_b64encode(sealed).decode()
        return out

    def open(
        self,
        privacy: MessagePrivacy,
        values: Mapping[str, object],
        envelope: Mapping[str, str],
        *,
        reveal_secrets: bool = False,
    ) -> dict[str, object]:
        """A copy of ``values`` with personal fields decrypted (or :data:`ERASED`) and,
        unless ``reveal_secrets``, secrets redacted."""
        out = dict(values) if reveal_secrets else redact(privacy, values)
        for name, subject_field in privacy.personal.items():
            value = out.get(name)
            if not isinstance(value, str) or not value or value == ERASED:
                continue
            subject = _subject(values, envelope, subject_field)
            cipher = self._keys.cipher(subject, create=False)
            if cipher is None:
                if self._keys.is_erased(subject):
                    out[name] = ERASED
                elif value.startswith(PREFIX):
                    # The store keys a subject before sealing anything of theirs:
                    # a sealed value without key or tombstone means this is not
                    # the store's key store. Say so rather than read it "erased".
                    raise UndecryptableValue(
                        f"no data key for the subject of {privacy.name}.{name} in "
                        f"{self._keys.path}: is PII_KEYS_FILE the event store's?"
                    )
                # Else never keyed: stored in clear before encryption existed.
                continue
            if not value.startswith(PREFIX):
                continue  # stored in clear before encryption existed
            try:
                sealed = base64.urlsafe_b64decode(value[len(PREFIX) :])
                plain = cipher.decrypt(sealed[:_NONCE], sealed[_NONCE:], subject.encode())
            except (InvalidTag, binascii.Error, ValueError):
                raise UndecryptableValue(f"{privacy.name}.{name} of {subject}") from None
            out[name] = plain.decode()
        return out

    # -- the two kinds of document the store keeps ---------------------------

    def seal_event(
        self, event_type: str, payload: Mapping[str, object], aggregate_id: str
    ) -> dict[str, object]:
        """The payload to store for an event of ``event_type`` in ``aggregate_id``'s stream."""
        privacy = EVENT_PRIVACY.get(event_type)
        if privacy is None:
            return dict(payload)
        return self.seal(privacy, payload, {"aggregate_id": aggregate_id})

    def open_event(
        self,
        event_type: str,
        payload: Mapping[str, object],
        aggregate_id: str,
        *,
        reveal_secrets: bool = False,
    ) -> dict[str, object]:
        """A stored payload as a reader sees it (opened; secrets per ``reveal_secrets``)."""
        privacy = EVENT_PRIVACY.get(event_type)
        if privacy is None:
            return dict(payload)
        return self.open(
            privacy, payload, {"aggregate_id": aggregate_id}, reveal_secrets=reveal_secrets
        )

    def seal_state(self, state: Mapping[str, object]) -> dict[str, object]:
        """A state dict (``domain.state_to_dict``) with its personal fields encrypted."""
        return self.seal(STATE_PRIVACY, state, {})

    def open_state(self, state: Mapping[str, object]) -> dict[str, object]:
        """A stored state dict with its personal fields decrypted (secrets kept: internal)."""
        return self.open(STATE_PRIVACY, state, {}, reveal_secrets=True)

    def erase(self, subject: str, *, at: str) -> None:
        """Destroys ``subject``'s key: every sealed value of theirs now opens as :data:`ERASED`."""
        self._keys.erase(subject, at=at)
