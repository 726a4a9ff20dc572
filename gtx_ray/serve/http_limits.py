"""Bounded request heads for uvicorn's httptools protocol, refused with the API's JSON errors.

uvicorn (httptools) buffers a request line and header block of any size before the app sees
them, and answers a URL longer than httptools can parse (64 KiB) with a plain-text 400. This
protocol refuses, as soon as the limit is crossed and before anything reaches the app:

- a request target (path and query) longer than ``MAX_URL_BYTES`` with 414 URI Too Long;
- a request head (request line and headers) longer than ``MAX_HEAD_BYTES``, or more than
  ``MAX_HEADERS`` header fields, with 431 Request Header Fields Too Large;
- any other unparsable request with 400;

each with the body ``{"error": message, "status": code}``. Memory per connection stays within
the limit plus one read from the socket. After the answer the server stops sending but keeps
reading (and discarding) for up to ``LINGER_S`` or ``LINGER_MAX_BYTES``, then closes: closing at
once, with the rest of a 1 MB request unread, would reset the connection and a client still
sending would never read the answer.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_URL_BYTES = 8 * 1024
MAX_HEAD_BYTES = 32 * 1024
MAX_HEADERS = 100
LINGER_S = 2.0
LINGER_MAX_BYTES = 16 * 1024 * 1024


class HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing an over-long request head."""


def error_response(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 response carrying the API's JSON error shape; closes the connection."""
    body = json.dumps({"error": message, "status": status}).encode()
    return b"".join(
        [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode(),
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the head limits of the module docstring (pass the class
    as ``uvicorn.Config(http=...)``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # between a message's first byte and the end of its headers
        self._head_bytes = 0
        self._headers_seen = 0
        self._header_bytes = 0  # parsed header fields (a whole head may come in one read)
        self._refusal: tuple[int, str] | None = None
        self._discarded: int | None = None  # bytes read after answering an unparsable request

    def _refuse(self, status: int, message: str) -> None:
        self._refusal = (status, message)
        raise HeadTooLarge(message)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes, self._headers_seen, self._header_bytes = True, 0, 0, 0

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > MAX_URL_BYTES:
            self._refuse(414, f"the request target is longer than {MAX_URL_BYTES} bytes")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers_seen += 1
        if self._headers_seen > MAX_HEADERS:
            self._refuse(431, f"more than {MAX_HEADERS} header fields")
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if len(self.url) + self._header_bytes > MAX_HEAD_BYTES:
            self._refuse(431, f"the request head is longer than {MAX_HEAD_BYTES} bytes")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self._discarded is not None:
            self._discarded += len(data)
            if self._discarded > LINGER_MAX_BYTES:
                self.transport.close()
            return
        super().data_received(data)
        # A single header's bytes are buffered inside httptools until its line ends, so the
        # head is also bounded here, by the bytes received while it is still incomplete.
        if self._in_head and self._refusal is None and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refusal = (431, f"the request head is longer than {MAX_HEAD_BYTES} bytes")
                self.send_400_response("")

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to an unparsable request, as JSON (414/431 for the limits above)."""
        status, message = self._refusal or (400, "invalid HTTP request")
        self.transport.write(error_response(status, message))
        self._discarded = 0
        try:
            self.transport.write_eof()
        except (NotImplementedError, RuntimeError, OSError):  # no half-close: just close
            self.transport.close()
            return
        self.loop.call_later(LINGER_S, self.transport.close)
