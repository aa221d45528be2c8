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
# The COMMIT's outcome is not known (its answer was lost or garbled, or the station died
# between writing and recording): the device may or may not hold it. Settled at the device's
# next contact from the hashes it reports for what it stores.
UNKNOWN = "unknown"

CERTIFICATE_STATUSES = (RESERVED, ISSUED, DELIVERED, VERIFIED, SUPERSEDED, UNDELIVERED,
                        REVOKED, VOID, UNKNOWN)

# A certificate that was signed can only end revoked or superseded: it exists somewhere.
# `void` is only for a reservation that was never signed (the CA refused or failed).
TRANSITIONS: dict[str, frozenset[str]] = {
    RESERVED: frozenset({ISSUED, VOID, UNDELIVERED}),
    ISSUED: frozenset({DELIVERED, UNDELIVERED, REVOKED, SUPERSEDED, UNKNOWN}),
    UNKNOWN: frozenset({DELIVERED, UNDELIVERED, REVOKED, SUPERSEDED}),
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


# Statuses a crash leaves unconfirmed. A reservation was never signed, so it cannot be on the
# device (-> undelivered); an issued certificate may have been written and committed just
# before the station died (-> unknown, settled at the device's next contact).
UNCONFIRMED = frozenset({RESERVED, ISSUED})
# Statuses that a newer certificate delivered to the same device replaces.
REPLACEABLE = frozenset({ISSUED, DELIVERED, VERIFIED, UNDELIVERED, UNKNOWN})
# A device holding a certificate of this station in one of these statuses is provisioned:
# re-provisioning it needs a supervisor's override.
HELD = frozenset({DELIVERED, VERIFIED})

DEVICE_STATES = ("detected", "in-flight", "passed", "failed", "interrupted")
IN_FLIGHT = "in-flight"
INTERRUPTED = "interrupted"
