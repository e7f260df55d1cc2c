"""Email and password rules, example-based and property-based."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import (
    MAX_PASSWORD_LENGTH,
    ValidationError,
    normalize_email,
    validate_password,
    validate_password_change,
    validate_role,
    validate_user_id,
)

from .factories import valid_emails, valid_passwords

pytestmark = pytest.mark.unit

# An independent statement of the email policy, used as an oracle.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_ORACLE = re.compile(rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?:{_LABEL}\.)+[a-z]{{2,}}")


def oracle_accepts(candidate: str) -> bool:
    match = _ORACLE.fullmatch(candidate)
    return match is not None and len(match["local"]) <= 64 and len(candidate) <= 254


# --- email ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice@example.com", "alice@example.com"),
        ("  Alice@Example.COM\t\n", "alice@example.com"),
        ("o'brien+tag@mail.example.co.uk", "o'brien+tag@mail.example.co.uk"),
        ("a.b.c@x-y.example", "a.b.c@x-y.example"),
        ("{weird}~=?^`|#$%&*/!@a1.io", "{weird}~=?^`|#$%&*/!@a1.io"),
        ("x" * 64 + "@" + "d" * 63 + ".com", "x" * 64 + "@" + "d" * 63 + ".com"),
        ("1@2.xn", "1@2.xn"),
    ],
)
def test_normalize_email_accepts_and_normalises(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "is required"),
        ("   ", "is required"),
        ("alice.example.com", "exactly one '@'"),
        ("a@b@example.com", "exactly one '@'"),
        ("@example.com", "local part"),
        ("x" * 65 + "@example.com", "local part must be at most 64"),
        (".alice@example.com", "must not start or end with '.'"),
        ("alice.@example.com", "must not start or end with '.'"),
        ("al..ice@example.com", "'..'"),
        ("al ice@example.com", "not allowed"),
        ("al(ice)@example.com", "not allowed"),
        ('"alice"@example.com', "not allowed"),
        ("alicé@example.com", "not allowed"),
        ("alice@", "domain"),
        ("alice@localhost", "at least one '.'"),
        ("alice@example..com", "empty label"),
        ("alice@.example.com", "empty label"),
        ("alice@example.com.", "empty label"),
        ("alice@-example.com", "'-'"),
        ("alice@example-.com", "'-'"),
        ("alice@" + "d" * 64 + ".com", "at most 63"),
        ("alice@exa_mple.com", "not allowed"),
        ("alice@exämple.com", "not allowed"),
        ("alice@example.c", "top-level domain"),
        ("alice@example.c0m", "top-level domain"),
        ("alice@127.0.0.1", "top-level domain"),
        ("alice@[127.0.0.1]", "not allowed"),
        ("a@" + ".".join(["d" * 60] * 5) + ".com", "at most 254"),
    ],
)
def test_normalize_email_rejects_with_field_named(raw: str, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        normalize_email(raw)
    assert info.value.field == "email"
    assert str(info.value).startswith("email: ")
    assert reason in str(info.value)


def test_normalize_email_uses_the_given_field_name() -> None:
    with pytest.raises(ValidationError, match=r"^new_email: ") as info:
        normalize_email("nope", field="new_email")
    assert info.value.field == "new_email"


def test_normalize_email_rejects_non_strings() -> None:
    with pytest.raises(ValidationError, match=r"email: must be a string"):
        normalize_email(None)  # type: ignore[arg-type]


@settings(max_examples=150)
@given(valid_emails)
def test_generated_valid_emails_are_accepted_and_idempotent(email: str) -> None:
    normalised = normalize_email(email.upper())
    assert normalised == email
    assert normalize_email(normalised) == normalised


def _mutations(email: str) -> list[str]:
    """Ways to break a valid address, each breaking exactly one rule."""
    local, domain = email.split("@")
    return [
        local + domain,
        f"{local}@@{domain}",
        f"{local}@{domain}@x.io",
        f"@{domain}",
        f".{local}@{domain}",
        f"{local}.@{domain}",
        f"{local}..x@{domain}",
        f"{local} x@{domain}",
        f"{local}\x00@{domain}",
        f"{local}é@{domain}",
        f"{'a' * 65}@{domain}",
        f"{local}@",
        f"{local}@{domain}.",
        f"{local}@.{domain}",
        f"{local}@-{domain}",
        f"{local}@{domain.replace('.', '')}",
        f"{local}@{domain}.c",
        f"{local}@{domain}.c1",
        f"{local}@{domain}.1com",
        f"{local}@x_y.{domain}",
        f"{local}@{'d' * 64}.{domain}",
        f"{local}@{'.'.join(['d' * 63] * 4)}.{domain}",
    ]


@settings(max_examples=100)
@given(valid_emails, st.data())
def test_every_malformed_email_is_rejected_naming_the_field(
    email: str, data: st.DataObject
) -> None:
    bad = data.draw(st.sampled_from(_mutations(email)))
    field = data.draw(st.sampled_from(["email", "new_email"]))
    with pytest.raises(ValidationError) as info:
        normalize_email(bad, field=field)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


@settings(max_examples=200)
@given(
    st.one_of(
        st.text(max_size=80),
        st.text("abc.@-_ xZ9", max_size=30),
        valid_emails.map(lambda e: f" {e.upper()} "),
    )
)
def test_normalize_email_agrees_with_an_independent_oracle(raw: str) -> None:
    candidate = raw.strip().lower()
    if oracle_accepts(candidate):
        assert normalize_email(raw) == candidate
    else:
        with pytest.raises(ValidationError) as info:
            normalize_email(raw)
        assert info.value.field == "email"
        assert str(info.value).startswith("email: ")


# --- password ---------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    [
        "8 chars!",
        "x" * MAX_PASSWORD_LENGTH,
        # 128 characters but 512 UTF-8 bytes: the limit counts characters,
        # and the service pre-hashes, so bytes past bcrypt's 72 still count.
        "\U0001f511" * MAX_PASSWORD_LENGTH,
        "  spaces are kept  ",
        "pässwörd",
    ],
)
def test_validate_password_accepts(password: str) -> None:
    validate_password(password)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("", "at least 8"),
        ("short12", "at least 8"),
        ("x" * (MAX_PASSWORD_LENGTH + 1), "at most 128"),
        ("abc\x00defghi", "NUL"),
        ("abcdefgh\ud800", "valid Unicode"),
    ],
)
def test_validate_password_rejects(password: str, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_password(password)
    assert info.value.field == "password"
    assert str(info.value).startswith("password: ")
    assert reason in str(info.value)


bad_passwords = st.one_of(
    st.text(max_size=7),
    st.text(min_size=MAX_PASSWORD_LENGTH + 1, max_size=MAX_PASSWORD_LENGTH + 40),
    st.tuples(valid_passwords, st.integers(0, 128)).map(
        lambda pair: pair[0][: pair[1]] + "\x00" + pair[0][pair[1] :]
    ),
)


@settings(max_examples=200)
@given(bad_passwords, st.sampled_from(["password", "new_password"]))
def test_every_bad_password_is_rejected_naming_the_field(password: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_password(password, field=field)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


@settings(max_examples=100)
@given(valid_passwords)
def test_every_good_password_is_accepted(password: str) -> None:
    validate_password(password)


def test_validate_password_change() -> None:
    validate_password_change("old password", "new password")
    with pytest.raises(ValidationError, match=r"^old_password: is required$"):
        validate_password_change("", "new password")
    with pytest.raises(ValidationError, match=r"^new_password: must be at least 8"):
        validate_password_change("old password", "short")
    with pytest.raises(ValidationError, match=r"^new_password: must differ") as info:
        validate_password_change("same password", "same password")
    assert info.value.field == "new_password"


# --- role and user id --------------------------------------------------------


def test_validate_role() -> None:
    assert validate_role("user") == "user"
    assert validate_role("admin") == "admin"
    with pytest.raises(ValidationError, match=r"^role: must be one of user, admin$"):
        validate_role("root")


@pytest.mark.parametrize("bad", ["", " ", "a b", "tab\there", "x" * 129, "nl\n"])
def test_validate_user_id_rejects(bad: str) -> None:
    with pytest.raises(ValidationError, match=r"^user_id: "):
        validate_user_id(bad)


def test_validate_user_id_accepts() -> None:
    assert validate_user_id("0b7e5c3a-1f0e-4c1e") == "0b7e5c3a-1f0e-4c1e"
