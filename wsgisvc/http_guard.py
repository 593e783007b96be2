"""Strict HTTP/1.1 request parsing in front of ``eventlet.wsgi``.

eventlet's protocol leans on ``http.server``: it accepts HTTP/0.9 request lines,
obsolete line folding, control characters in header values, ``Content-Length:
+5``, duplicate ``Content-Length`` and any ``Transfer-Encoding`` it does not
understand (which it then ignores). Each of these lets a front proxy and this
server disagree on where a request ends, which is how requests get smuggled.

:class:`GuardedProtocol` replaces the request-line and header parsing with a
strict one (RFC 9112): a request that is ambiguous or malformed is answered with
400 (414 for a long request line, 431 for a long header line, 505 for an HTTP
version other than 1.x) and the connection is closed; the application never sees
it. It also yields to the hub between two requests on one keep-alive connection,
so a busy connection cannot starve the others (eventlet's protocol never yields
when the next request is already in the socket buffer).

A side benefit: headers are parsed with two precompiled regular expressions
instead of the email package's feed parser, which is cheaper per request.
"""

import http.client
import logging
import re
import time

import eventlet
from eventlet import wsgi as eventlet_wsgi

LOG = logging.getLogger(__name__)

# RFC 9110 token characters; a header name and a method are tokens.
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(
    rb"(" + _TOKEN + rb") ([\x21-\x7e\x80-\xff]+) HTTP/([0-9])\.([0-9])\r\n"
)
# name ":" OWS value OWS; the value holds no CTL but HTAB (so no CR, LF, NUL).
_HEADER_LINE = re.compile(rb"(" + _TOKEN + rb"):([\t\x20-\x7e\x80-\xff]*)\r\n")
_DIGITS = re.compile(r"[0-9]{1,18}")
_END_OF_HEADERS = b"\r\n"

# A cap on the number of header lines, as http.client has: beyond it a client
# only makes the server spend memory.
MAX_HEADERS = 100


class BadRequest(Exception):
    """A request that must not reach the application.

    ``status`` is the HTTP status line sent back before the connection closes.
    """

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Headers(http.client.HTTPMessage):
    """The ``HTTPMessage`` eventlet expects, with lookups by a dict.

    ``email.message.Message.get`` scans every header and lowercases each name;
    eventlet and the framing checks call it about ten times per request.
    """

    def __init__(self) -> None:
        super().__init__()
        self._by_name: dict[str, list[str]] = {}

    def add(self, name: str, value: str) -> None:
        self.set_raw(name, value)
        self._by_name.setdefault(name.lower(), []).append(value)

    def get(self, name, failobj=None):
        values = self._by_name.get(name.lower())
        return values[0] if values else failobj

    def get_all(self, name, failobj=None):
        return list(self._by_name.get(name.lower(), ())) or failobj


def read_headers(rfile, max_line: int) -> Headers:
    """Read and validate the header block that follows a request line.

    Returns an ``HTTPMessage`` built directly from the validated lines (the
    type ``http.server`` would produce, which eventlet reads).
    """
    headers = Headers()
    for _ in range(MAX_HEADERS + 1):
        line = rfile.readline(max_line + 1)
        if len(line) > max_line:
            raise BadRequest(
                "431 Request Header Fields Too Large", "header line too long"
            )
        if line == _END_OF_HEADERS:
            return headers
        if not line:
            raise BadRequest("400 Bad Request", "connection closed inside the headers")
        if line[0] in b" \t":
            raise BadRequest("400 Bad Request", "obsolete line folding in headers")
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            raise BadRequest("400 Bad Request", _describe_bad_header(line))
        name, value = match.groups()
        headers.add(name.decode("ascii"), value.strip(b" \t").decode("latin-1"))
    raise BadRequest("431 Request Header Fields Too Large", "too many header lines")


def _describe_bad_header(line: bytes) -> str:
    """Say which rule a header line broke, for the 400 body and the log."""
    if not line.endswith(b"\r\n"):
        return "header line not ended by CRLF (bare LF or CR)"
    name, colon, value = line[:-2].partition(b":")
    if not colon or not re.fullmatch(_TOKEN, name):
        return "invalid header name"
    if b"\r" in value or b"\0" in value:
        return "CR or NUL in a header value"
    return "control character in a header value"


def check_framing(headers: Headers, http11: bool) -> None:
    """Reject any request whose body length two parsers could read differently.

    RFC 9112 section 6: Content-Length with Transfer-Encoding, more than one
    Content-Length, a Content-Length that is not plain digits, and any
    Transfer-Encoding but a single ``chunked`` are all grounds for smuggling.
    """
    lengths = headers.get_all("content-length", ())
    codings = headers.get_all("transfer-encoding", ())
    if lengths and codings:
        raise BadRequest("400 Bad Request", "both Content-Length and Transfer-Encoding")
    if len(lengths) > 1:
        raise BadRequest("400 Bad Request", "duplicate Content-Length")
    if lengths and not _DIGITS.fullmatch(lengths[0]):
        raise BadRequest("400 Bad Request", "Content-Length is not a number")
    if codings:
        if not http11:
            raise BadRequest(
                "400 Bad Request", "Transfer-Encoding in an HTTP/1.0 request"
            )
        if len(codings) > 1 or codings[0].lower() != "chunked":
            raise BadRequest("400 Bad Request", "Transfer-Encoding other than chunked")
    hosts = headers.get_all("host", ())
    if len(hosts) > 1 or (http11 and not hosts):
        raise BadRequest("400 Bad Request", "HTTP/1.1 needs exactly one Host header")


class GuardedProtocol(eventlet_wsgi.HttpProtocol):
    """eventlet's protocol with strict parsing and fair keep-alive scheduling.

    Configure a subclass once per server with :func:`make_protocol`; eventlet
    instantiates it per connection.
    """

    max_header_line = 16384

    def setup(self) -> None:
        self.opened_at = time.monotonic()
        super().setup()

    def handle(self) -> None:
        """Serve requests on one connection, yielding to the hub between them."""
        self.close_connection = True
        conn_state = self.conn_state
        while True:
            self.handle_one_request()
            if conn_state[2] == eventlet_wsgi.STATE_CLOSE or self.close_connection:
                return
            conn_state[2] = eventlet_wsgi.STATE_IDLE
            # Fairness: let every other ready connection run before this one
            # reads its next (possibly already buffered) request.
            eventlet.sleep(0)
            if conn_state[2] == eventlet_wsgi.STATE_CLOSE:
                return

    def parse_request(self) -> bool:
        """Parse the request line and headers strictly; answer bad ones here."""
        self.close_connection = True
        self.command = None
        self.request_version = "HTTP/1.0"
        raw = self.raw_requestline
        self.requestline = raw.rstrip(b"\r\n").decode("latin-1")
        try:
            http11 = self._parse_request_line(raw)
            reader = getattr(self.rfile, "fp", self.rfile)  # eventlet wraps it
            headers = read_headers(reader, self.max_header_line)
            check_framing(headers, http11)
        except BadRequest as exc:
            self._reject(exc)
            return False
        self.headers = headers
        connection = headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        else:
            self.close_connection = not (http11 or connection == "keep-alive")
        if not self.close_connection and self.server.should_shed_connection(
            self.opened_at
        ):
            self.close_connection = True
        return True

    def _parse_request_line(self, raw: bytes) -> bool:
        """Set command/path/version from ``raw``; True for HTTP/1.1 and later."""
        match = _REQUEST_LINE.fullmatch(raw)
        if match is None:
            raise BadRequest("400 Bad Request", "malformed request line")
        method, target, major, minor = match.groups()
        if major != b"1":
            raise BadRequest(
                "505 HTTP Version Not Supported", "only HTTP/1.x is served"
            )
        self.command = method.decode("ascii")
        self.path = target.decode("latin-1")
        self.request_version = "HTTP/1." + chr(minor[0])
        return minor != b"0"

    def _reject(self, exc: BadRequest) -> None:
        """Answer ``exc`` and close: after a framing error nothing is trusted."""
        LOG.info(
            "rejected request from %s with %s: %s",
            self.client_address[0] if self.client_address else "?",
            exc.status,
            exc.reason,
        )
        body = exc.reason.encode("ascii") + b"\n"
        self.wfile.write(
            b"HTTP/1.1 %s\r\nConnection: close\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n%s"
            % (exc.status.encode("ascii"), len(body), body)
        )
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib name
        """Route http.server's messages to logging instead of stderr."""
        LOG.debug("%s: " + format, self.address_string(), *args)


def make_protocol(max_header_line: int) -> type[GuardedProtocol]:
    """Build the protocol class for one server, once, with its limits baked in."""
    return type(
        "ConfiguredProtocol", (GuardedProtocol,), {"max_header_line": max_header_line}
    )
