"""MethodWrappers: one wrapper per method, rebuilt only when the wrapped handler changes."""

from __future__ import annotations

from service_kit.method_wrappers import MethodWrappers


def test_a_wrapper_is_built_once_per_method_and_handler() -> None:
    built: list[tuple[str, object]] = []

    def wrap(method: str, handler: object) -> object:
        built.append((method, handler))
        return ("wrapped", method, handler)

    wrappers: MethodWrappers[object] = MethodWrappers(wrap)
    a, b, refused = object(), object(), object()
    first = wrappers.get("/s/A", a)
    assert wrappers.get("/s/A", a) is first
    assert wrappers.get("/s/B", b) == ("wrapped", "/s/B", b)
    assert wrappers.get("/s/A", refused) == ("wrapped", "/s/A", refused)  # another handler
    assert wrappers.get("/s/A", a) == first and wrappers.get("/s/A", a) is not first
    assert built == [("/s/A", a), ("/s/B", b), ("/s/A", refused), ("/s/A", a)]
