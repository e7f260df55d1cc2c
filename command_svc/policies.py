"""Who may call which CommandService method (the AuthInterceptor's table).

- Register, ConfirmPasswordReset, ConfirmEmailVerification: anyone (PUBLIC;
  the mailed token is the proof);
- ChangePassword / ChangeEmail / Deactivate: the user named by ``id``, an
  admin, or a service;
- Activate: admins (and services);
- RecordLogin, IssuePasswordReset, RevokeSessions: services only (query_svc
  records logins, asks for reset mails, ends sessions on logout).

Every method of the service must appear here; the interceptor refuses any
that does not (deny by default), and a unit test checks the table is complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from cqrs.command.v1 import command_pb2

from service_kit.auth import Access

__all__ = ["POLICIES", "SERVICE_NAME", "method"]

SERVICE_NAME: Final = command_pb2.DESCRIPTOR.services_by_name["CommandService"].full_name


def method(name: str) -> str:
    """The full gRPC method name, e.g. ``/cqrs.command.v1.CommandService/Register``."""
    return f"/{SERVICE_NAME}/{name}"


POLICIES: Final[Mapping[str, Access]] = MappingProxyType(
    {
        method("Register"): Access.PUBLIC,
        method("ChangePassword"): Access.owner("id"),
        method("ChangeEmail"): Access.owner("id"),
        method("Deactivate"): Access.owner("id"),
        method("RecordLogin"): Access.SERVICE,
        method("Activate"): Access.ADMIN,
        method("IssuePasswordReset"): Access.SERVICE,
        method("ConfirmPasswordReset"): Access.PUBLIC,
        method("ConfirmEmailVerification"): Access.PUBLIC,
        method("RevokeSessions"): Access.SERVICE,
    }
)
