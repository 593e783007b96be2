"""Malformed and ambiguous requests, as raw bytes, with the status each must get.

Shared by the in-process tests (tests/unit/test_wsgi_http_guard.py) and the
binary's (tests/functional/test_api_bad_input.py), as is
:func:`split_responses`, a client's reading of the responses that came back
(tests/unit/test_wsgi_http_hardening.py, tests/functional/test_gunicorn_framing.py).
Limits assume ``max_header_line = 256``.
"""

MAX_HEADERS = 100  # wsgisvc.http.guard.MAX_HEADERS


def request_bytes(*lines: bytes, body: bytes = b"") -> bytes:
    """A request from its request line and header lines, CRLF-joined."""
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def split_responses(
    data: bytes, bodiless_first: bool = False
) -> list[tuple[bytes, list[bytes], bytes]]:
    """(status line, Content-Length values, body) for each response in
    ``data``, framed by its Content-Length as a client would; the body of the
    last one may be cut short. ``bodiless_first``: the first answers a HEAD,
    or is a 204 or 304, and has no body whatever its Content-Length says."""
    answers = []
    while data:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, f"an unterminated head: {head!r}"
        status, *fields = head.split(b"\r\n")
        lengths = [
            value.strip()
            for name, _, value in (field.partition(b":") for field in fields)
            if name.lower() == b"content-length"
        ]
        if bodiless_first and not answers:
            size = 0
        else:
            size = int(lengths[0]) if lengths else len(data)
        answers.append((status, lengths, data[:size]))
        data = data[size:]
    return answers


POST11, GET11, HOST = b"POST / HTTP/1.1", b"GET / HTTP/1.1", b"Host: x"
TE_CHUNKED, LAST_CHUNK = b"Transfer-Encoding: chunked", b"0\r\n\r\n"

BAD_REQUESTS = {
    "content_length_and_transfer_encoding": (
        request_bytes(POST11, HOST, b"Content-Length: 5", TE_CHUNKED, body=LAST_CHUNK),
        b"400",
    ),
    "duplicate_content_length": (
        request_bytes(
            POST11, HOST, b"Content-Length: 2", b"Content-Length: 2", body=b"ab"
        ),
        b"400",
    ),
    "non_numeric_content_length": (
        request_bytes(POST11, HOST, b"Content-Length: abc"),
        b"400",
    ),
    "signed_content_length": (
        request_bytes(POST11, HOST, b"Content-Length: +2", body=b"ab"),
        b"400",
    ),
    "listed_content_length": (
        request_bytes(POST11, HOST, b"Content-Length: 2, 2", body=b"ab"),
        b"400",
    ),
    "transfer_encoding_gzip_chunked": (
        request_bytes(
            POST11, HOST, b"Transfer-Encoding: gzip, chunked", body=LAST_CHUNK
        ),
        b"400",
    ),
    "transfer_encoding_identity": (
        request_bytes(POST11, HOST, b"Transfer-Encoding: identity"),
        b"400",
    ),
    "transfer_encoding_twice": (
        request_bytes(POST11, HOST, TE_CHUNKED, TE_CHUNKED, body=LAST_CHUNK),
        b"400",
    ),
    "transfer_encoding_in_http10": (
        request_bytes(b"POST / HTTP/1.0", TE_CHUNKED, body=LAST_CHUNK),
        b"400",
    ),
    "obsolete_line_folding": (
        request_bytes(GET11, HOST, b"X-Folded: a", b" b"),
        b"400",
    ),
    "cr_in_header_value": (request_bytes(GET11, HOST, b"X-A: a\rb"), b"400"),
    "lf_in_header_value": (request_bytes(GET11, HOST, b"X-A: a\nX-B: b"), b"400"),
    "nul_in_header_value": (request_bytes(GET11, HOST, b"X-A: a\x00b"), b"400"),
    "space_in_header_name": (request_bytes(GET11, HOST, b"X A: b"), b"400"),
    "space_before_colon": (request_bytes(GET11, b"Host : x"), b"400"),
    "non_token_header_name": (request_bytes(GET11, HOST, b"X(A): b"), b"400"),
    "empty_header_name": (request_bytes(GET11, HOST, b": b"), b"400"),
    "http09_request_line": (request_bytes(b"GET /"), b"400"),
    "garbage_request_line": (request_bytes(b"\x16\x03\x01\x02\x00\x01\x00"), b"400"),
    "http2_version": (request_bytes(b"GET / HTTP/2.0", HOST), b"505"),
    "missing_host_http11": (request_bytes(GET11, b"X-A: b"), b"400"),
    "two_hosts": (request_bytes(GET11, b"Host: a", b"Host: b"), b"400"),
    "request_line_too_long": (
        request_bytes(b"GET /" + b"a" * 300 + b" HTTP/1.1", HOST),
        b"414",
    ),
    "header_line_too_long": (
        request_bytes(GET11, HOST, b"X-Big: " + b"b" * 300),
        b"431",
    ),
    "too_many_headers": (
        request_bytes(GET11, HOST, *(b"X-%d: v" % i for i in range(MAX_HEADERS + 1))),
        b"431",
    ),
}

# Chunked bodies (after a valid ``Transfer-Encoding: chunked`` head) that RFC 9112
# section 7.1 refuses: each must be a 400 and a closed connection.
BAD_BODIES = {
    "size_0x_prefix": b"0x2\r\nab\r\n0\r\n\r\n",
    "size_plus_sign": b"+2\r\nab\r\n0\r\n\r\n",
    "size_underscore": b"0_2\r\nab\r\n0\r\n\r\n",
    "size_leading_space": b" 2\r\nab\r\n0\r\n\r\n",
    "size_negative": b"-1\r\nab\r\n0\r\n\r\n",
    "size_empty": b"\r\nab\r\n0\r\n\r\n",
    "size_overflow": b"10000000000000000\r\nab\r\n0\r\n\r\n",
    "size_bare_lf": b"2\nab\r\n0\r\n\r\n",
    "extension_space_in_name": b"2;a b\r\nab\r\n0\r\n\r\n",
    "extension_space_before": b"2 ;a=b\r\nab\r\n0\r\n\r\n",
    "data_longer_than_size": b"2\r\nabc\r\n0\r\n\r\n",
    "data_without_crlf": b"2\r\nab0\r\n\r\n",
    "data_bare_lf": b"2\r\nab\n0\r\n\r\n",
    "trailer_bad_name": b"0\r\nX T: v\r\n\r\n",
    "trailer_folded": b"0\r\nX-T: v\r\n w\r\n\r\n",
    "last_chunk_without_final_crlf": b"0\r\n",  # the next request is no trailer
}
