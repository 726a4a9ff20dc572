"""What a meter's request to a 2030.5 server can end in besides success.

The class says what the client does next: ``TransportError`` (no answer) → back off and check
the mirror; ``Gone`` (the server forgot the meter) → re-discover; ``Busy`` → retry the same
thing later; ``Refused`` → stop talking to this server for a long while; ``ProtocolError`` (an
answer the client cannot use) → back off and re-discover.
"""

from __future__ import annotations


class ClientError(Exception):
    """Base of what a request can end in besides success."""


class TransportError(ClientError):
    """No answer: connection refused or reset, TLS failure, timeout."""


class Gone(ClientError):
    """The server does not know the meter's resources (404/403/410): re-discover."""


class Busy(ClientError):
    """429 or 5xx: retry the same thing later (``retry_after`` s, if the server said)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Refused(ClientError):
    """The client must not go on with this server (PIN mismatch, registration refused, …)."""


class ProtocolError(ClientError):
    """An answer the client cannot use (unexpected status, missing link, invalid document)."""
