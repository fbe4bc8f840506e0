"""The gRPC errors of the fake: the abort carrier and the real service's fault messages."""

from __future__ import annotations

import grpc

_DEFAULT_FAULT_DETAILS = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: (
        "Exhausted property tokens per hour quota. Consumed: 40001 tokens. Limit: 40000 tokens."
    ),
    grpc.StatusCode.UNAVAILABLE: "The service is currently unavailable.",
    grpc.StatusCode.INTERNAL: "Internal error encountered.",
    grpc.StatusCode.DEADLINE_EXCEEDED: "Deadline Exceeded",
    grpc.StatusCode.PERMISSION_DENIED: (
        "User does not have sufficient permissions for this property."
    ),
    grpc.StatusCode.UNAUTHENTICATED: (
        "Request had invalid authentication credentials. Expected OAuth 2 access token."
    ),
    grpc.StatusCode.INVALID_ARGUMENT: "Request contains an invalid argument.",
}


class _Abort(Exception):
    """Carries a gRPC status from deep inside request handling back to the handler."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
