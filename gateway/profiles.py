"""Where each annotated route is served, and in which shape.

The rule, applied to every RPC with a ``google.api.http`` annotation
(those added later included, with no gateway change):

- ``/v1`` + the annotated path answers in our shape (proto JSON, see
  :mod:`gateway.transcode`), with strict query parameters;
- the annotated path itself answers in the seed's shape if it is one of the
  seed's routes (:data:`gateway.seed_format.SEED_ROUTES`), else in ours.

So the seed's clients keep working unchanged on the unprefixed paths, and
our own clients (the console, generated clients) use ``/v1``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.path_template import PathTemplate, parse
from gateway.routes import HttpRoute
from gateway.seed_format import SEED_ROUTES, SeedRoute, check_covered

V1 = "/v1"


@dataclass(frozen=True, slots=True)
class ServedRoute:
    """One (verb, path) the gateway answers: the route, its served template, its shape.

    ``seed`` is set exactly when the answer is in the seed's shape.
    """

    route: HttpRoute
    template: PathTemplate
    seed: SeedRoute | None
    prefixed: bool

    @property
    def verb(self) -> str:
        return self.route.verb

    @property
    def profile(self) -> str:
        """``v1`` (our shape under /v1), ``seed`` or ``unprefixed`` (our shape, no prefix)."""
        if self.seed is not None:
            return "seed"
        return "v1" if self.prefixed else "unprefixed"


def served_routes(
    routes: Sequence[HttpRoute],
    seed_routes: Mapping[tuple[str, str], SeedRoute] = SEED_ROUTES,
) -> list[ServedRoute]:
    """Both bindings of every route, /v1 first; RouteError if a seed route lost its RPC.

    ``seed_routes`` is the seed's table (tests of another contract pass none).
    """
    check_covered(routes, seed_routes)
    served: list[ServedRoute] = []
    for route in routes:
        text = route.template.text
        seed = seed_routes.get((route.verb, text))
        served.append(ServedRoute(route, parse(V1 + ("" if text == "/" else text)), None, True))
        served.append(ServedRoute(route, route.template, seed, False))
    return served
