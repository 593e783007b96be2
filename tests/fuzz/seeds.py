"""The seeds: every hostile and valid vector the tests already hold, as fuzz
inputs (control bytes, then the wire bytes; see ``harness.CONTROL``)."""

from __future__ import annotations

from tests.unit import _http_cases, _http_corpus

CHUNKED_HEAD = _http_cases.request_bytes(
    _http_cases.POST11, _http_cases.HOST, _http_cases.TE_CHUNKED
)
# Vectors written inline in tests/unit/test_wsgi_http_core.py.
_CORE_VECTORS = [
    CHUNKED_HEAD
    + b'3;name=value;flag\r\nabc\r\n2;q="quoted"\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n'
    + b"POST /next HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nfg",
    CHUNKED_HEAD + b"1;a=" + b"1" * 300,
    CHUNKED_HEAD + b"0\r\nX-T: " + b"1" * 300,
    b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    b"GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n",
    b"GET http://h:8/p?q HTTP/1.1\r\nHost: other\r\n\r\n" * 2,
]

# Issue 24: chunk data that looks like framing (CRLF CRLF, a last chunk and a
# request), chunks of 1 byte, sizes with leading zeros and upper-case digits;
# each followed by a pipelined request.
_NEXT = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
_CHUNKED_VECTORS = [
    CHUNKED_HEAD + b"8\r\n\r\n\r\n\r\n\r\n\r\n0\r\n\r\n" + _NEXT,
    CHUNKED_HEAD + b"a\r\n0\r\n\r\nGET /\r\n0\r\n\r\n" + _NEXT,
    CHUNKED_HEAD + b"1\r\n\r\r\n1\r\n\n\r\n" * 3 + b"0\r\n\r\n" + _NEXT,
    CHUNKED_HEAD + b"000B;x=y\r\n\r\n\r\n\r\n\r\n\r\nz\r\n0\r\nT: 1\r\n\r\n" + _NEXT,
    CHUNKED_HEAD + b"11\r\n" + b"\r\n" * 8 + b"z\r\n0\r\n\r\n" + _NEXT,
]


def wire_vectors() -> list[bytes]:
    vectors = [payload for payload, _ in _http_cases.BAD_REQUESTS.values()]
    vectors += [CHUNKED_HEAD + body for body in _http_cases.BAD_BODIES.values()]
    vectors += [case.data for case in _http_corpus.VALID + _http_corpus.INVALID]
    return vectors + _CORE_VECTORS + _CHUNKED_VECTORS


def seeds() -> list[bytes]:
    """Each wire vector behind control bytes that vary the read style and the
    split points from seed to seed."""
    return [
        bytes([i % 4]) + (i * 2654435761 % 2**32).to_bytes(4, "big") + wire
        for i, wire in enumerate(wire_vectors())
    ]
