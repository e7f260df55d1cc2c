"""Pure input validators, cheap enough to run before any expensive work.

The command service calls these *before* bcrypt, so a malformed request is
refused without spending a hash; ``decide`` calls them again so that no event
can be produced from invalid input whoever the caller is.

Every failure is a :class:`~domain.errors.ValidationError` whose ``field``
names the input and whose message starts with that name, e.g.
``"email: must contain exactly one '@'"``.

Email rules (deliberately conservative, ASCII only):

- surrounding whitespace is stripped and the address is lower-cased;
- at most 254 characters in total and exactly one ``@``;
- local part: 1..64 characters from letters, digits and
  ``.!#$%&'*+/=?^_`{|}~-``, with no leading, trailing or doubled dot;
- domain: at least two dot-separated labels, each 1..63 letters, digits or
  hyphens and not starting or ending with a hyphen; the last label (TLD) is
  at least two letters.

Password rules:

- 8..128 *characters* (Unicode code points, not bytes) and no NUL;
- it must be encodable as UTF-8 (the service hashes its UTF-8 bytes).

bcrypt only looks at the first 72 bytes of its input. The service therefore
pre-hashes every password (SHA-256, then base64, 44 ASCII bytes) before
bcrypt, so every character of a long password counts and the 128-character
limit is a policy bound, not a bcrypt one. Passwords are never stripped or
normalised: what the user typed is what is hashed.
"""

from __future__ import annotations

from typing import Final

from domain.errors import ValidationError

__all__ = [
    "MAX_CLIENT_ADDRESS_LENGTH",
    "MAX_EMAIL_LENGTH",
    "MAX_PASSWORD_LENGTH",
    "MAX_REASON_LENGTH",
    "MAX_USER_ID_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "ROLES",
    "ROLE_ADMIN",
    "ROLE_USER",
    "normalize_email",
    "validate_bounded_text",
    "validate_password",
    "validate_password_change",
    "validate_role",
    "validate_user_id",
]

ROLE_USER: Final = "user"
ROLE_ADMIN: Final = "admin"
ROLES: Final[tuple[str, ...]] = (ROLE_USER, ROLE_ADMIN)

MAX_EMAIL_LENGTH: Final = 254
MAX_LOCAL_PART_LENGTH: Final = 64
MAX_LABEL_LENGTH: Final = 63
MIN_PASSWORD_LENGTH: Final = 8
MAX_PASSWORD_LENGTH: Final = 128
MAX_USER_ID_LENGTH: Final = 128
MAX_REASON_LENGTH: Final = 500
MAX_CLIENT_ADDRESS_LENGTH: Final = 255

# Explicit ASCII sets: str.isalnum() would also accept non-ASCII letters and
# digits (e.g. Arabic-Indic digits), which this conservative policy refuses.
_LETTERS: Final = frozenset("abcdefghijklmnopqrstuvwxyz")
_DIGITS: Final = frozenset("0123456789")
_LOCAL_CHARS: Final = _LETTERS | _DIGITS | frozenset(".!#$%&'*+/=?^_`{|}~-")
_LABEL_CHARS: Final = _LETTERS | _DIGITS | frozenset("-")


def normalize_email(raw: str, field: str = "email") -> str:
    """Return the canonical (stripped, lower-cased) form of a valid address.

    Raises ``ValidationError(field, ...)`` if the address breaks a rule in the
    module docstring. Idempotent: ``normalize_email(normalize_email(x)) ==
    normalize_email(x)``.
    """
    if not isinstance(raw, str):
        raise ValidationError(field, "must be a string")
    email = raw.strip().lower()
    if not email:
        raise ValidationError(field, "is required")
    if len(email) > MAX_EMAIL_LENGTH:
        raise ValidationError(field, f"must be at most {MAX_EMAIL_LENGTH} characters")
    if email.count("@") != 1:
        raise ValidationError(field, "must contain exactly one '@'")
    local, domain = email.split("@")
    _check_local_part(local, field)
    _check_domain(domain, field)
    return email


def _check_local_part(local: str, field: str) -> None:
    if not local:
        raise ValidationError(field, "must have a local part before '@'")
    if len(local) > MAX_LOCAL_PART_LENGTH:
        raise ValidationError(
            field, f"local part must be at most {MAX_LOCAL_PART_LENGTH} characters"
        )
    if not set(local) <= _LOCAL_CHARS:
        raise ValidationError(field, "local part contains a character that is not allowed")
    if local.startswith(".") or local.endswith("."):
        raise ValidationError(field, "local part must not start or end with '.'")
    if ".." in local:
        raise ValidationError(field, "local part must not contain '..'")


def _check_domain(domain: str, field: str) -> None:
    if not domain:
        raise ValidationError(field, "must have a domain after '@'")
    labels = domain.split(".")
    if len(labels) < 2:
        raise ValidationError(field, "domain must contain at least one '.'")
    for label in labels:
        if not label:
            raise ValidationError(field, "domain must not contain an empty label")
        if len(label) > MAX_LABEL_LENGTH:
            raise ValidationError(
                field, f"domain labels must be at most {MAX_LABEL_LENGTH} characters"
            )
        if not set(label) <= _LABEL_CHARS:
            raise ValidationError(field, "domain contains a character that is not allowed")
        if label.startswith("-") or label.endswith("-"):
            raise ValidationError(field, "domain labels must not start or end with '-'")
    tld = labels[-1]
    if len(tld) < 2 or not set(tld) <= _LETTERS:
        raise ValidationError(field, "top-level domain must be at least two letters")


def validate_password(raw: str, field: str = "password") -> None:
    """Raise ``ValidationError(field, ...)`` unless ``raw`` is an acceptable password."""
    if not isinstance(raw, str):
        raise ValidationError(field, "must be a string")
    if len(raw) < MIN_PASSWORD_LENGTH:
        raise ValidationError(field, f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(raw) > MAX_PASSWORD_LENGTH:
        raise ValidationError(field, f"must be at most {MAX_PASSWORD_LENGTH} characters")
    if "\x00" in raw:
        raise ValidationError(field, "must not contain NUL characters")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be hashed as UTF-8 by the service.
        raise ValidationError(field, "must be valid Unicode text") from None


def validate_password_change(old: str, new: str) -> None:
    """Validate a password change before the old password is checked.

    ``old_password`` must be present (its correctness is the service's bcrypt
    check, not a rule here); ``new_password`` must be a valid password that
    differs from the old one.
    """
    if not isinstance(old, str) or not old:
        raise ValidationError("old_password", "is required")
    validate_password(new, field="new_password")
    if new == old:
        raise ValidationError("new_password", "must differ from the old password")


def validate_role(role: str, field: str = "role") -> str:
    """Return ``role`` if it is one of :data:`ROLES`; else raise ``ValidationError``."""
    if role not in ROLES:
        raise ValidationError(field, f"must be one of {', '.join(ROLES)}")
    return role


def validate_user_id(user_id: str, field: str = "user_id") -> str:
    """Return ``user_id`` if it is a non-empty, whitespace-free string of bounded length."""
    if not isinstance(user_id, str) or not user_id:
        raise ValidationError(field, "is required")
    if len(user_id) > MAX_USER_ID_LENGTH:
        raise ValidationError(field, f"must be at most {MAX_USER_ID_LENGTH} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in user_id):
        raise ValidationError(field, "must not contain whitespace or control characters")
    return user_id


def validate_bounded_text(value: str, field: str, max_length: int) -> str:
    """Return free text (may be empty) if it is a string of at most ``max_length`` chars."""
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    if len(value) > max_length:
        raise ValidationError(field, f"must be at most {max_length} characters")
    return value
