"""Enum words in HTTP: ``active`` for ``USER_STATUS_ACTIVE``, and back."""

from __future__ import annotations

import pytest
from cqrs.common.v1 import user_status_pb2

from gateway import enum_words

from . import synthetic

pytestmark = pytest.mark.unit

USER_STATUS = user_status_pb2.DESCRIPTOR.enum_types_by_name["UserStatus"]


def test_a_word_is_the_value_name_without_the_enums_prefix_in_lower_case() -> None:
    assert enum_words.words(USER_STATUS) == ["unspecified", "active", "deactivated", "erased"]
    assert enum_words.word(USER_STATUS, "USER_STATUS_DEACTIVATED") == "deactivated"
    color = synthetic.pool().FindEnumTypeByName(f"{synthetic.PACKAGE}.Color")
    assert enum_words.words(color) == ["unspecified", "red", "blue"]


def test_words_and_names_both_read_back_to_the_name() -> None:
    for text in ("active", "USER_STATUS_ACTIVE"):
        assert enum_words.value_name(USER_STATUS, text) == "USER_STATUS_ACTIVE"
    for text in ("ACTIVE", "Active", "enabled", ""):
        assert enum_words.value_name(USER_STATUS, text) is None


def test_a_name_the_enum_lacks_is_left_as_it_is() -> None:
    assert enum_words.word(USER_STATUS, "SOMETHING_NEW") == "SOMETHING_NEW"
