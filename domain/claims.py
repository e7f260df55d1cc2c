"""Unique-email claims that an event takes or releases in the store.

Emails are unique among users (case-insensitively: they are normalised to
lower case before any event carries them). The store enforces this
atomically at append time: each appended event's :class:`ClaimChanges`
are applied in the same transaction, and an append that would take a claim
held by another stream is refused. The claim key is the normalised email in
the namespace :data:`EMAIL_CLAIM_NAMESPACE`.

Decision: deactivation does NOT release the email. A deactivated account's
address stays reserved, so nobody can register it later and silently step
into that person's identity (password resets, audit trails, other systems
keyed by email). Erasure (``user.erased``) is the explicit, audited command
that frees it: the erased user's address may be registered again, by anyone
(the new account is a new person as far as the system knows: nothing links
it to the erased one, whose data is unreadable).

The store keeps claims as keyed hashes of these values, never the address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from domain.events import (
    DomainEvent,
    EmailChanged,
    UserCreated,
    UserErased,
)

__all__ = [
    "DEACTIVATION_CLAIM_NAMESPACE",
    "EMAIL_CLAIM_NAMESPACE",
    "NO_CLAIM_CHANGES",
    "ClaimChanges",
    "claims_for",
    "deactivation_claim",
]

EMAIL_CLAIM_NAMESPACE: Final = "user.email"

DEACTIVATION_CLAIM_NAMESPACE: Final = "user.deactivation"
"""Deactivations are serialised through claims in this namespace.

The rule "the last active admin cannot be deactivated" spans every admin's
stream, but an append checks one stream's version. So every deactivation
takes the claim ``str(n)``, where ``n`` is how many deactivations the store
held when the command read the admins' states: two deactivations decided
on the same reading take the same claim and one is refused (the command
reads again and decides again), and a decision on an older reading finds
its claim taken. Each deactivation is therefore decided on the states left
by every earlier one, and two admins deactivating each other at once
cannot leave none. The service supplies ``n`` (:func:`deactivation_claim`);
the claims are never released.
"""


def deactivation_claim(deactivations_before: int) -> str:
    """The claim value of the deactivation decided after ``deactivations_before`` others."""
    if deactivations_before < 0:
        raise ValueError("deactivations_before must not be negative")
    return str(deactivations_before)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimChanges:
    """Email values (in :data:`EMAIL_CLAIM_NAMESPACE`) an event takes and releases.

    A value never appears in both ``take`` and ``release``.
    """

    take: tuple[str, ...] = ()
    release: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True if the event touches no claim."""
        return not self.take and not self.release


NO_CLAIM_CHANGES: Final = ClaimChanges()


def claims_for(event: DomainEvent) -> ClaimChanges:
    """Return the claims ``event`` takes and releases (see module docstring)."""
    if isinstance(event, UserCreated):
        return ClaimChanges(take=(event.email,))
    if isinstance(event, EmailChanged):
        # decide never emits new == old; if history holds one, taking and
        # releasing the same value would be contradictory, so do neither.
        if event.new_email == event.old_email:
            return NO_CLAIM_CHANGES
        return ClaimChanges(take=(event.new_email,), release=(event.old_email,))
    if isinstance(event, UserErased):
        return ClaimChanges(release=(event.email,))
    # Password changes, logins and deactivation (see the decision above)
    # leave claims as they are.
    return NO_CLAIM_CHANGES
