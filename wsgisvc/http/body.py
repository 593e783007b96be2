"""``wsgi.input``: a request body as the protocol frames it, read on demand."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from wsgisvc.http.guard import BadRequest
from wsgisvc.http.limits import RECV_SIZE

if TYPE_CHECKING:
    from wsgisvc.http.protocol import Protocol
    from wsgisvc.http.scheduling import Transport


class ClientGone(ConnectionError):
    """The client closed the connection inside the request body."""


class Input:
    """``wsgi.input``: the body as the protocol frames it, read on demand.

    ``100 Continue`` is sent on the first read, and only to HTTP/1.1 clients
    that asked for it. A malformed body raises :class:`BadRequest`, and so
    does a body that stalls for ``client_socket_timeout`` (408); the server
    answers its status whatever the application does with the exception. A
    client that closes inside its body raises :class:`ClientGone`: nothing is
    answered, and the access line says 499 (nginx's "client closed request"),
    not a server error.
    """

    def __init__(self, protocol: Protocol, transport: Transport) -> None:
        self._protocol = protocol
        self._transport = transport
        self._message = protocol.request.message
        self.error: BadRequest | None = None
        self.client_gone = False

    def _fill(self) -> bool:
        """Wait until body bytes are buffered; False at the body's end."""
        message = self._message
        if message.body:
            return True
        if message.complete:
            return False
        protocol = self._protocol
        timeout = protocol.shared.limits.socket_timeout
        try:
            going = protocol.continue_bytes()
            if going:
                self._transport.send(going, timeout)
            while not message.body and not message.complete:
                self._read_more(timeout)
        except BadRequest as exc:
            self.error = exc
            raise
        except ClientGone:
            self.client_gone = True
            raise
        return bool(message.body)

    def _read_more(self, timeout: float | None) -> None:
        """Receive more of the body (blocking, within ``timeout``)."""
        message, protocol = self._message, self._protocol
        if message.error is None:
            try:
                data = self._transport.recv(RECV_SIZE, timeout)
            except TimeoutError:  # the client is there but its body stalled
                protocol.stalled()
            except OSError as exc:  # a reset or a TLS error: gone all the same
                raise ClientGone(
                    f"client connection failed inside the request body: {exc}"
                ) from exc
            else:
                if not data:
                    raise ClientGone(
                        "client closed the connection inside the request body"
                    )
                protocol.receive(data, time.monotonic())
        if message.error is not None:
            raise message.error

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size >= 0:
            return self._take(size, newline=False)
        message, parts = self._message, []
        while self._fill():
            parts.extend(message.body)
            message.body.clear()
            message.body_bytes = 0
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        limit = size if size is not None and size >= 0 else sys.maxsize
        return self._take(limit, newline=True)

    def _take(self, size: int, newline: bool) -> bytes:
        """Up to ``size`` bytes; with ``newline``, up to and with a b"\\n"."""
        message, parts, wanted = self._message, [], size
        while wanted > 0 and self._fill():
            piece = message.body.popleft()
            end = piece.find(b"\n") + 1 if newline else 0
            cut = min(end or len(piece), wanted)
            if cut < len(piece):
                message.body.appendleft(piece[cut:])
                piece = piece[:cut]
            parts.append(piece)
            wanted -= cut
            message.body_bytes -= cut
            if end and cut == end:
                break
        return b"".join(parts)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = []
        while line := self.readline():
            lines.append(line)
        return lines

    def __iter__(self):
        return iter(self.readline, b"")
