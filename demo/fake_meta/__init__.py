"""A local stand-in for Meta's Graph API (an ad account and its insights edge) over HTTP,
so the official ``facebook-business`` client runs unchanged (demo.fake_meta.server)."""

from demo.fake_meta.server import (
    NO_PERMISSION,
    RATE_LIMITED,
    TOKEN_EXPIRED,
    TOO_MANY_REQUESTS,
    FakeAdAccount,
    FakeMeta,
    Fault,
)

__all__ = [
    "NO_PERMISSION",
    "RATE_LIMITED",
    "TOKEN_EXPIRED",
    "TOO_MANY_REQUESTS",
    "FakeAdAccount",
    "FakeMeta",
    "Fault",
]
