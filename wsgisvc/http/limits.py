"""The bounds every HTTP decision is made within: one server's limits, and
the sizes and times that are the same for every server.

The first module of the HTTP core: it imports none of the others.
"""

from __future__ import annotations

import dataclasses

# What one read asks the socket for.
RECV_SIZE = 65536
# After an early answer (the application did not read the whole body), this
# much of the rest is read and dropped so the connection can be kept; a longer
# rest closes the connection.
DRAIN_LIMIT = 65536
# After a refusal, the connection is shut for writing and reads are dropped
# for at most this long (and DRAIN_LIMIT bytes): closing with unread data
# would reset the connection and lose the answer on the way.
LINGER_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class Limits:
    """One server's limits, from its options (``wsgi.Server``)."""

    max_line: int  # a head line's bytes (a 431 past it)
    max_url: int  # a request target's bytes (a 414 past it)
    header_timeout: float  # a head's first byte (or the accept) to its last
    keepalive_timeout: float  # a response's end to the next request's first byte
    socket_timeout: float | None  # a body that stalls (408), a send that does
    keep_alive: bool  # whether a connection may serve more than one request
