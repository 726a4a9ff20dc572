"""Errors of the resource layer, each mapped to one HTTP status by the front.

Managers raise them; the dispatcher hands them back to the front as values (they cross the Ray
boundary pickled), and the front answers with the status and, for 4xx with a body, an ``Error``
document carrying ``reason`` (Error.reasonCode: 0 invalid format, 1 invalid values, 2 limit)
for 400, 403 and 415; the message goes in the HTTP reason phrase.
"""

from __future__ import annotations


class ResourceError(Exception):
    """Base: ``status`` is the HTTP status, ``reason`` the 2030.5 Error.reasonCode or None."""

    status = 400
    reason: int | None = None

    def __init__(self, message: str, reason: int | None = None, location: str | None = None):
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.location = location

    def __reduce__(self):
        return (type(self), (self.message, self.reason, self.location))


class BadRequest(ResourceError):
    """400: the body or query is wrong (reason 0 format, 1 values)."""

    status = 400
    reason = 1


class LimitReached(ResourceError):
    """400 with reason 2: a configured bound (devices, mirrors, readings) is full."""

    status = 400
    reason = 2


class TooLarge(ResourceError):
    """413 with reason 2: one request holds more than a device may keep at all; smaller requests
    would fit (clients that halve their posts on 413, as the built-in one does, recover)."""

    status = 413
    reason = 2


class Forbidden(ResourceError):
    """403: the caller's certificate may not do this (e.g. claims another device's LFDI, or is
    not a device certificate); reason 1, invalid request values."""

    status = 403
    reason = 1


class NotFound(ResourceError):
    """404: no such resource, or it belongs to another device."""

    status = 404


class Conflict(ResourceError):
    """409: e.g. the LFDI is already registered (``location`` points at the existing one)."""

    status = 409


class UnsupportedMediaType(ResourceError):
    """415: the body is not declared as a 2030.5 document (reason 0, invalid request format)."""

    status = 415
    reason = 0


class Unavailable(ResourceError):
    """503: the registry cannot be reached right now; the client should retry."""

    status = 503


class InternalError(ResourceError):
    """500: a bug in the server (logged where it happened)."""

    status = 500
