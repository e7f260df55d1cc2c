"""Path templates: the google.api.http grammar, matching and precedence keys."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.path_template import SegmentKind, TemplateError, parse, split_path

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/users/{id}/password", "/users/abc/password", {"id": "abc"}),
        ("/users/{id=*}/password", "/users/abc/password", {"id": "abc"}),
        (
            "/replay/user/{aggregate_id}/state-at",
            "/replay/user/u-1/state-at",
            {"aggregate_id": "u-1"},
        ),
        ("/events/count", "/events/count", {}),
        ("/files/{path=**}", "/files/a/b/c", {"path": "a/b/c"}),
        ("/files/{path=**}", "/files", {"path": ""}),
        ("/v1/{name=shelves/*}/books", "/v1/shelves/s1/books", {"name": "shelves/s1"}),
        ("/v1/{name}:cancel", "/v1/op-7:cancel", {"name": "op-7"}),
        ("/a/*/c", "/a/anything/c", {}),
        ("/", "/", {}),
        ("/nested/{inner.note}", "/nested/hello", {"inner.note": "hello"}),
    ],
)
def test_matches(template: str, path: str, expected: dict[str, str]) -> None:
    assert parse(template).match(split_path(path)) == expected


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("/users/{id}/password", "/users/abc"),
        ("/users/{id}/password", "/users/abc/email"),
        ("/users/{id}", "/users//"),  # a variable never captures an empty segment
        ("/users/{id}", "/users/a/b"),
        ("/v1/{name}:cancel", "/v1/op-7"),
        ("/v1/{name=shelves/*}/books", "/v1/racks/s1/books"),
        ("/events/count", "/events/counts"),
    ],
)
def test_does_not_match(template: str, path: str) -> None:
    assert parse(template).match(split_path(path)) is None


def test_an_encoded_slash_stays_inside_its_segment() -> None:
    assert parse("/users/{id}").match(split_path("/users/a%2Fb")) == {"id": "a/b"}


def test_a_trailing_slash_is_ignored() -> None:
    assert split_path("/users/") == ["users"]
    assert split_path("/") == []


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(UnicodeDecodeError):
        split_path("/users/%ff")


@pytest.mark.parametrize(
    "template",
    ["users", "/a/**/b", "/{a}/{a}", "/{a", "/a/{b={c}}", "/a/{1x}", "/a//b", "/a/{b}c"],
)
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(TemplateError, match="path template"):
        parse(template)


def test_literal_segments_outrank_variables_left_to_right() -> None:
    count = parse("/events/count").specificity
    variable = parse("/events/{id}").specificity
    rest = parse("/events/{path=**}").specificity
    assert count > variable > rest
    assert parse("/a/b/{c}").specificity > parse("/a/{b}/c").specificity


def test_shapes_ignore_variable_names() -> None:
    assert parse("/users/{id}").shape == parse("/users/{user_id}").shape
    assert parse("/users/{id}").shape != parse("/users/me").shape


def test_openapi_path_names_each_variable_once() -> None:
    assert parse("/v1/{name=shelves/*}/books:get").openapi_path() == "/v1/{name}/books:get"
    assert parse("/users/{id}/password").openapi_path() == "/users/{id}/password"


def test_segments_are_classified() -> None:
    kinds = [s.kind for s in parse("/a/{b}/**").segments]
    assert kinds == [SegmentKind.LITERAL, SegmentKind.SINGLE, SegmentKind.MULTI]


@given(st.text(min_size=1, max_size=30))
def test_any_text_round_trips_through_one_variable(value: str) -> None:
    path = "/users/" + quote(value, safe="") + "/password"
    assert parse("/users/{id}/password").match(split_path(path)) == {"id": value}
