"""The REST gateway: HTTP/JSON → gRPC, built from the contract's annotations.

No route is written by hand: at start, every RPC with a ``google.api.http``
annotation in the compiled descriptor set becomes a route, and requests are
transcoded to generic gRPC calls. The gateway holds no business logic.

- :mod:`gateway.profiles` - each route under ``/v1`` (our shape) and unprefixed
  (the seed's shape on the seed's routes, else ours)
- :mod:`gateway.seed_format` - the seed's wire format, one table keyed by route
- :mod:`gateway.enum_words` - enum values as lower-case words in HTTP
- :mod:`gateway.path_template` - the http.proto path template grammar
- :mod:`gateway.router` - matching with precedence; JSON 404/405
- :mod:`gateway.routes` - descriptor set → routes (fails at start on a bad annotation)
- :mod:`gateway.transcode` / :mod:`gateway.query_params` / :mod:`gateway.json_check`
  - request → message (400 naming the field), message → JSON
- :mod:`gateway.forwarding` - headers → gRPC metadata
- :mod:`gateway.errors` - gRPC status → HTTP status, the error body
- :mod:`gateway.backends` - channels and generic calls
- :mod:`gateway.dispatch` - serving one request, NDJSON streams
- :mod:`gateway.health` / :mod:`gateway.openapi` - ``/health``, ``/openapi.json``
- :mod:`gateway.console` - ``/console``, the web console's static assets
- :mod:`gateway.app` - ``build_app``, ``start``, ``serve``, ``main``
"""
