# One image for every service of cqrs-users; the service is the module to run:
#
#   docker build -t cqrs-users .
#   docker run --rm -e JWT_SECRET=... cqrs-users store_svc     # or command_svc, query_svc, gateway
#   docker run --rm cqrs-users query_svc.rebuild --help        # any `python -m` module of the project
#
# The entrypoint is `python -m cqrs_users_server`: the wheel ships the project's
# packages inside that one package (setup.py), and it runs the module it is given.
#
# docker-compose.yml builds it once per service and passes the module as `command`.
# Tested without a Docker engine by tests/unit/deploy/ (COPY sources, a wheel built from
# exactly what is copied, and the services importing from that wheel).

# ---------------------------------------------------------------- build ---
# Builds a virtual environment holding the project and its runtime dependencies
# only (no [dev] extras). The final image takes the venv and nothing else, so no
# source tree, build backend or pip cache ends up in it.
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when
# the pins change, not on every code edit. Every pin lives in pyproject.toml.
COPY pyproject.toml setup.py README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt

# Then the code: generated contracts, the packages the services import, and
# cqrs_admin (the operator's `cqrs-admin`, e.g. `docker compose exec query-svc
# cqrs-admin rebuild`; docs/deploy.md runs its other commands from the host).
# (bootstrap/ and bench/ are the single-process dev runner and the benchmarks:
# not part of a deployment.) What ships is listed in setup.py.
COPY cqrs_users_server/ cqrs_users_server/
COPY gen/ gen/
COPY domain/ domain/
COPY service_kit/ service_kit/
COPY pii/ pii/
COPY store_svc/ store_svc/
COPY command_svc/ command_svc/
COPY query_svc/ query_svc/
COPY gateway/ gateway/
COPY cqrs_admin/ cqrs_admin/
RUN pip install --no-cache-dir . \
    && python -m compileall -q /opt/venv/lib

# -------------------------------------------------------------- runtime ---
FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="cqrs-users" \
      org.opencontainers.image.description="Event-sourced CQRS user accounts: store_svc, command_svc, query_svc, gateway"

# Unbuffered output so logs reach `docker logs` at once; no .pyc writes at run
# time (the venv is compiled above and the root filesystem may be read-only).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATA_DIR=/var/lib/cqrs-users

# A fixed non-root uid/gid, so volume ownership is predictable across rebuilds.
# DATA_DIR is only used by the embedded (SQLite) backends; it exists and is
# writable so that `docker run cqrs-users store_svc` works without a database.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/cqrs-users \
    && chown app:app /var/lib/cqrs-users

COPY --from=build /opt/venv /opt/venv

WORKDIR /var/lib/cqrs-users
USER app:app

# Documentation only; docker-compose.yml publishes them.
EXPOSE 9090 9091 9095 8088 8089 8090

ENTRYPOINT ["python", "-m", "cqrs_users_server"]
CMD ["gateway"]
