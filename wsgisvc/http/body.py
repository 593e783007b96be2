"""``wsgi.input``: a request body as the parser frames it, read on demand, and
the bounds on reading and dropping bodies.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from wsgisvc.http.guard import BadRequest

if TYPE_CHECKING:
    from wsgisvc.http.core import Connection
    from wsgisvc.http.parser import Message

RECV_SIZE = 65536
# After an early answer (the application did not read the whole body), this
# much of the rest is read and dropped so the connection can be kept; a longer
# rest closes the connection.
DRAIN_LIMIT = 65536
# After a refusal, the connection is shut for writing and reads are dropped
# for at most this long (and DRAIN_LIMIT bytes): closing with unread data
# would reset the connection and lose the answer on the way.
LINGER_SECONDS = 1.0
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ClientGone(ConnectionError):
    """The client closed the connection inside the request body."""


class Input:
    """``wsgi.input``: the body as the parser frames it, read on demand.

    ``100 Continue`` is sent on the first read, and only to HTTP/1.1 clients
    that asked for it. A malformed body raises :class:`BadRequest`, and so
    does a body that stalls for ``client_socket_timeout`` (408); the server
    answers its status whatever the application does with the exception. A
    client that closes inside its body raises :class:`ClientGone`: nothing is
    answered, and the access line says 499 (nginx's "client closed request"),
    not a server error.
    """

    def __init__(self, conn: Connection, message: Message, expect: bool) -> None:
        self._conn = conn
        self._message = message
        self._expect = expect
        self.error: BadRequest | None = None
        self.client_gone = False

    @property
    def awaiting_continue(self) -> bool:
        """True while a client that asked for ``100 Continue`` did not get it."""
        return self._expect

    def _fill(self) -> bool:
        """Wait until body bytes are buffered; False at the body's end."""
        message = self._message
        if message.body:
            return True
        conn = self._conn
        if self._expect and not message.complete:
            self._expect = False
            conn.sock.sendall(_CONTINUE)
        try:
            while not message.body and not message.complete:
                conn.read_more(message)
        except BadRequest as exc:
            self.error = exc
            raise
        except ClientGone:
            self.client_gone = True
            raise
        return bool(message.body)

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
