"""Certificate statuses, their allowed transitions, and device states (docs/audit.md)."""
from __future__ import annotations

RESERVED = "reserved"
ISSUED = "issued"
DELIVERED = "delivered"
VERIFIED = "verified"
SUPERSEDED = "superseded"
UNDELIVERED = "undelivered"
REVOKED = "revoked"
VOID = "void"

CERTIFICATE_STATUSES = (RESERVED, ISSUED, DELIVERED, VERIFIED, SUPERSEDED, UNDELIVERED,
                        REVOKED, VOID)

# A certificate that was signed can only end revoked or superseded: it exists somewhere.
# `void` is only for a reservation that was never signed (the CA refused or failed).
TRANSITIONS: dict[str, frozenset[str]] = {
    RESERVED: frozenset({ISSUED, VOID, UNDELIVERED}),
    ISSUED: frozenset({DELIVERED, UNDELIVERED, REVOKED, SUPERSEDED}),
    DELIVERED: frozenset({VERIFIED, UNDELIVERED, REVOKED, SUPERSEDED}),
    VERIFIED: frozenset({REVOKED, SUPERSEDED}),
    UNDELIVERED: frozenset({SUPERSEDED, REVOKED, VOID}),
    SUPERSEDED: frozenset({REVOKED}),
    REVOKED: frozenset(),
    VOID: frozenset(),
}



def transition_allowed(current: str, new: str, *, signed: bool) -> bool:
    """Whether the station ever moves a certificate from `current` to `new`. `signed`: a
    certificate was recorded for it, so it exists somewhere and can never become void."""
    if new == VOID and signed:
        return False
    return new in TRANSITIONS.get(current, frozenset())


# Statuses a crash leaves unconfirmed: the certificate may or may not be on the device.
UNCONFIRMED = frozenset({RESERVED, ISSUED})
# Statuses that a newer certificate delivered to the same device replaces.
REPLACEABLE = frozenset({ISSUED, DELIVERED, VERIFIED, UNDELIVERED})

DEVICE_STATES = ("detected", "in-flight", "passed", "failed", "interrupted")
IN_FLIGHT = "in-flight"
INTERRUPTED = "interrupted"
