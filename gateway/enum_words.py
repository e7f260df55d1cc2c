"""Enum values in HTTP JSON: lower-case words, without the enum's prefix.

Proto style names every value after its enum (``USER_STATUS_ACTIVE`` in
``UserStatus``) so that values of two enums never collide in one package;
an HTTP client reads ``active``. The gateway writes the word, in both HTTP
profiles (docs/adr/0008-enum-words-in-http.md), and reads the word, the
full value name or the number. gRPC clients keep the proto names.

Invariant: within one enum, words are unique (the prefix is the same for
every value, so two names giving one word would be one name).
"""

from __future__ import annotations

import functools
import re

from google.protobuf.descriptor import EnumDescriptor

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@functools.cache
def _prefix(enum: EnumDescriptor) -> str:
    """``UserStatus`` -> ``USER_STATUS_``."""
    return _CAMEL_BOUNDARY.sub("_", enum.name).upper() + "_"


@functools.cache
def _words(enum: EnumDescriptor) -> dict[str, str]:
    """Value name -> word, in declaration order."""
    prefix = _prefix(enum)
    return {
        value.name: value.name.removeprefix(prefix).lower()
        if value.name.startswith(prefix)
        else value.name.lower()
        for value in enum.values
    }


@functools.cache
def _names(enum: EnumDescriptor) -> dict[str, str]:
    """Word -> value name."""
    return {word: name for name, word in _words(enum).items()}


def word(enum: EnumDescriptor, name: str) -> str:
    """The HTTP word of a value name; a name the enum lacks is returned as it is."""
    return _words(enum).get(name, name)


def words(enum: EnumDescriptor) -> list[str]:
    """Every word of the enum, in declaration order."""
    return list(_words(enum).values())


def value_name(enum: EnumDescriptor, text: str) -> str | None:
    """The value name ``text`` means (a word or a value name), or None."""
    if text in enum.values_by_name:
        return text
    return _names(enum).get(text)
