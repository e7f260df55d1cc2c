"""Pure domain of the user-accounts system, shared by every service.

No I/O, no clock, no id generation, no hashing, stdlib only: time (``now``),
ids and password hashes are passed in. Timestamps are aware UTC datetimes.

- :mod:`domain.events` - frozen event dataclasses and their wire names
- :mod:`domain.state` - ``UserState`` and ``public_fields`` (never the hash)
- :mod:`domain.commands` / :mod:`domain.decide` - commands and ``decide``
- :mod:`domain.evolve` - ``evolve`` / ``fold`` with version checks
- :mod:`domain.validation` - email and password rules
- :mod:`domain.serialization` - payloads, redaction, snapshot dicts
- :mod:`domain.claims` - unique-email claims an event takes or releases
- :mod:`domain.diff` - field-by-field comparison of two states
- :mod:`domain.errors` - ``DomainError`` and its subclasses
"""

from domain.claims import EMAIL_CLAIM_NAMESPACE, NO_CLAIM_CHANGES, ClaimChanges, claims_for
from domain.commands import (
    ChangeEmail,
    ChangePassword,
    Command,
    Deactivate,
    RecordLogin,
    RegisterUser,
)
from domain.decide import decide
from domain.diff import (
    PASSWORD_CHANGED,
    PASSWORD_FIELD,
    PASSWORD_UNCHANGED,
    FieldChange,
    changed_fields,
    diff_states,
    render_value,
)
from domain.errors import (
    AlreadyExists,
    DomainError,
    EventSequenceError,
    InvalidCredentials,
    UnknownEventType,
    UserDeactivatedError,
    UserNotFound,
    ValidationError,
    VersionConflict,
)
from domain.events import (
    ENVELOPE_FIELDS,
    EVENT_CLASSES,
    EVENT_TYPES,
    DomainEvent,
    EmailChanged,
    LoginRecorded,
    PasswordChanged,
    UserCreated,
    UserDeactivated,
)
from domain.evolve import evolve, fold
from domain.serialization import (
    REDACTED,
    STATE_SCHEMA_VERSION,
    event_from_payload,
    event_to_payload,
    redact_payload,
    state_from_dict,
    state_to_dict,
)
from domain.state import PUBLIC_FIELDS, UserState, UserStatus, public_fields
from domain.timefmt import format_timestamp, parse_timestamp, require_utc
from domain.validation import (
    MAX_CLIENT_ADDRESS_LENGTH,
    MAX_EMAIL_LENGTH,
    MAX_PASSWORD_LENGTH,
    MAX_REASON_LENGTH,
    MAX_USER_ID_LENGTH,
    MIN_PASSWORD_LENGTH,
    ROLE_ADMIN,
    ROLE_USER,
    ROLES,
    normalize_email,
    validate_password,
    validate_password_change,
    validate_role,
    validate_user_id,
)

__all__ = [
    "EMAIL_CLAIM_NAMESPACE",
    "ENVELOPE_FIELDS",
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "MAX_CLIENT_ADDRESS_LENGTH",
    "MAX_EMAIL_LENGTH",
    "MAX_PASSWORD_LENGTH",
    "MAX_REASON_LENGTH",
    "MAX_USER_ID_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "NO_CLAIM_CHANGES",
    "PASSWORD_CHANGED",
    "PASSWORD_FIELD",
    "PASSWORD_UNCHANGED",
    "PUBLIC_FIELDS",
    "REDACTED",
    "ROLES",
    "ROLE_ADMIN",
    "ROLE_USER",
    "STATE_SCHEMA_VERSION",
    "AlreadyExists",
    "ChangeEmail",
    "ChangePassword",
    "ClaimChanges",
    "Command",
    "Deactivate",
    "DomainError",
    "DomainEvent",
    "EmailChanged",
    "EventSequenceError",
    "FieldChange",
    "InvalidCredentials",
    "LoginRecorded",
    "PasswordChanged",
    "RecordLogin",
    "RegisterUser",
    "UnknownEventType",
    "UserCreated",
    "UserDeactivated",
    "UserDeactivatedError",
    "UserNotFound",
    "UserState",
    "UserStatus",
    "ValidationError",
    "VersionConflict",
    "changed_fields",
    "claims_for",
    "decide",
    "diff_states",
    "event_from_payload",
    "event_to_payload",
    "evolve",
    "fold",
    "format_timestamp",
    "normalize_email",
    "parse_timestamp",
    "public_fields",
    "redact_payload",
    "render_value",
    "require_utc",
    "state_from_dict",
    "state_to_dict",
    "validate_password",
    "validate_password_change",
    "validate_role",
    "validate_user_id",
]
