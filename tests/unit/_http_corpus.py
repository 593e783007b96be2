"""A request corpus: raw bytes, and what a correct HTTP/1.1 server makes of them.

Our own equivalent of gunicorn's ``tests/requests/valid`` and ``invalid``
(read for the kinds of case it checks; the cases are written here). A
:class:`Valid` case lists the request(s) an application must see, in order,
as the environ gives them; ``closes`` says the server must close after the
last one and answer nothing more. An :class:`Invalid` case must be a 4xx (or
the given status) and a close, the application never called.

``xfail`` names a known defect (issues 17 and 19) the lead is fixing: the
case fails today and must pass once the fix lands. Used by
tests/unit/test_http_corpus.py (replayed over real sockets on both
schedulers) and tests/fuzz/ (seeds). Limits assume ``max_header_line = 256``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_LINE = 256  # the server's max_header_line in every replay


@dataclass(frozen=True)
class Seen:
    """One request as the application sees it in its environ."""

    method: str
    path: str  # PATH_INFO (percent-decoded)
    version: str = "1.1"
    query: str | None = None  # QUERY_STRING, absent when empty
    headers: dict[str, str] = field(default_factory=lambda: {"HTTP_HOST": "x"})
    body: bytes = b""
    raw_path: str | None = None  # RAW_PATH_INFO, when it differs from path


@dataclass(frozen=True)
class Valid:
    name: str
    data: bytes
    requests: tuple[Seen, ...]
    closes: bool = False
    xfail: str | None = None


@dataclass(frozen=True)
class Invalid:
    name: str
    data: bytes
    status: bytes = b"4"  # a prefix of the status code the answer must have
    xfail: str | None = None


def head(line: bytes, *fields: bytes, body: bytes = b"") -> bytes:
    """A request from its request line and header lines, CRLF-joined."""
    return b"".join(x + b"\r\n" for x in (line, *fields)) + b"\r\n" + body


HOST = b"Host: x"
CHUNKED = b"Transfer-Encoding: chunked"
TE_SEEN = {"HTTP_HOST": "x", "HTTP_TRANSFER_ENCODING": "chunked"}


def post_chunked(chunks: bytes, *fields: bytes) -> bytes:
    return head(b"POST /c HTTP/1.1", HOST, CHUNKED, *fields, body=chunks)


def host(**more: str) -> dict[str, str]:
    return {"HTTP_HOST": "x", **more}


PIPELINE_AFTER_CLOSE = "issue 19: data after Connection: close is refused"
TWO_SPACES = "issue 19: two spaces in the request line are served"
UNDERSCORE = "issue 17: underscore header names merge with dashed ones"
UPGRADE_BODY = "issue 17: Upgrade with a body reaches the app with an empty body"
# Found by this corpus, reported to the lead (not in issue 17/19's lists):
ASTERISK = "new: asterisk-form is served for methods other than OPTIONS"

VALID: list[Valid] = [
    Valid("get", head(b"GET / HTTP/1.1", HOST), (Seen("GET", "/"),)),
    Valid(
        "get_query",
        head(b"GET /p?a=1&b=%20 HTTP/1.1", HOST),
        (Seen("GET", "/p", query="a=1&b=%20"),),
    ),
    Valid("empty_query", head(b"GET /p? HTTP/1.1", HOST), (Seen("GET", "/p"),)),
    Valid(
        "question_mark_in_query",
        head(b"GET /p?a?b=/c HTTP/1.1", HOST),
        (Seen("GET", "/p", query="a?b=/c"),),
    ),
    Valid(
        "percent_space",
        head(b"GET /a%20b HTTP/1.1", HOST),
        (Seen("GET", "/a b", raw_path="/a%20b"),),
    ),
    Valid(
        "percent_slash",
        head(b"GET /a%2Fb HTTP/1.1", HOST),
        (Seen("GET", "/a/b", raw_path="/a%2Fb"),),
    ),
    Valid(
        "percent_latin1",
        head(b"GET /caf%E9 HTTP/1.1", HOST),
        (Seen("GET", "/caf\xe9", raw_path="/caf%E9"),),
    ),
    Valid(
        "percent_utf8_bytes_as_latin1",
        head(b"GET /%C3%A9 HTTP/1.1", HOST),
        (Seen("GET", "/\xc3\xa9", raw_path="/%C3%A9"),),
    ),
    Valid(
        "sub_delims_in_path",
        head(b"GET /a;b,c=d@e:f~g!$&'()*+ HTTP/1.1", HOST),
        (Seen("GET", "/a;b,c=d@e:f~g!$&'()*+"),),
    ),
    Valid("double_slash", head(b"GET //a//b HTTP/1.1", HOST), (Seen("GET", "//a//b"),)),
    Valid(
        "absolute_form",
        head(b"GET http://example.com/p?q=1 HTTP/1.1", b"Host: example.com"),
        (Seen("GET", "/p", query="q=1", headers={"HTTP_HOST": "example.com"}),),
    ),
    Valid(
        "absolute_form_overrides_host",
        head(b"GET https://api.example:8443/v1 HTTP/1.1", b"Host: other"),
        (Seen("GET", "/v1", headers={"HTTP_HOST": "api.example:8443"}),),
    ),
    Valid(
        "absolute_form_without_path",
        head(b"GET http://h.example HTTP/1.1", b"Host: h.example"),
        (Seen("GET", "/", headers={"HTTP_HOST": "h.example"}),),
    ),
    Valid(
        "asterisk_form",
        head(b"OPTIONS * HTTP/1.1", HOST),
        (Seen("OPTIONS", "*"),),
    ),
    Valid("head", head(b"HEAD /h HTTP/1.1", HOST), (Seen("HEAD", "/h"),)),
    Valid("delete", head(b"DELETE /d HTTP/1.1", HOST), (Seen("DELETE", "/d"),)),
    Valid(
        "put_content_length",
        head(b"PUT /u HTTP/1.1", HOST, b"Content-Length: 5", body=b"hello"),
        (Seen("PUT", "/u", headers=host(CONTENT_LENGTH="5"), body=b"hello"),),
    ),
    Valid(
        "patch_with_type",
        head(
            b"PATCH /p HTTP/1.1",
            HOST,
            b"Content-Type: application/json",
            b"Content-Length: 2",
            body=b"{}",
        ),
        (
            Seen(
                "PATCH",
                "/p",
                headers=host(CONTENT_TYPE="application/json", CONTENT_LENGTH="2"),
                body=b"{}",
            ),
        ),
    ),
    Valid(
        "content_length_zero",
        head(b"POST /z HTTP/1.1", HOST, b"Content-Length: 0"),
        (Seen("POST", "/z", headers=host(CONTENT_LENGTH="0")),),
    ),
    Valid(
        "content_length_leading_zeros",
        head(b"POST /z HTTP/1.1", HOST, b"Content-Length: 003", body=b"abc"),
        (Seen("POST", "/z", headers=host(CONTENT_LENGTH="003"), body=b"abc"),),
    ),
    Valid(
        "binary_body",
        head(b"POST /b HTTP/1.1", HOST, b"Content-Length: 6", body=b"\x00\r\n\xff\n\r"),
        (
            Seen(
                "POST", "/b", headers=host(CONTENT_LENGTH="6"), body=b"\x00\r\n\xff\n\r"
            ),
        ),
    ),
    Valid(
        "chunked",
        post_chunked(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        (Seen("POST", "/c", headers=TE_SEEN, body=b"hello world"),),
    ),
    Valid(
        "chunked_mixed_case_coding",
        head(
            b"POST /c HTTP/1.1",
            HOST,
            b"Transfer-Encoding: ChUnKeD",
            body=b"2\r\nok\r\n0\r\n\r\n",
        ),
        (
            Seen(
                "POST",
                "/c",
                headers=host(HTTP_TRANSFER_ENCODING="ChUnKeD"),
                body=b"ok",
            ),
        ),
    ),
    Valid(
        "chunked_extensions",
        post_chunked(b'3;a=1;flag\r\nabc\r\n1;b="x y"\r\nd\r\n0;last\r\n\r\n'),
        (Seen("POST", "/c", headers=TE_SEEN, body=b"abcd"),),
    ),
    Valid(
        "chunked_trailers_not_in_environ",
        post_chunked(b"2\r\nab\r\n0\r\nX-Checksum: 1\r\nX-More: 2\r\n\r\n"),
        (Seen("POST", "/c", headers=TE_SEEN, body=b"ab"),),
    ),
    Valid(
        "chunked_hex_sizes",
        post_chunked(b"A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n"),
        (Seen("POST", "/c", headers=TE_SEEN, body=b"0123456789abcdefghijk"),),
    ),
    Valid(
        "chunked_leading_zero_sizes",
        post_chunked(b"0003\r\nabc\r\n000\r\n\r\n"),
        (Seen("POST", "/c", headers=TE_SEEN, body=b"abc"),),
    ),
    Valid(
        "chunked_crlf_in_data",
        post_chunked(b"4\r\n\r\n\r\n\r\n0\r\n\r\n"),
        (Seen("POST", "/c", headers=TE_SEEN, body=b"\r\n\r\n"),),
    ),
    Valid(
        "chunked_empty_body",
        post_chunked(b"0\r\n\r\n"),
        (Seen("POST", "/c", headers=TE_SEEN),),
    ),
    Valid(
        "chunked_many_chunks",
        post_chunked(b"1\r\nx\r\n" * 50 + b"0\r\n\r\n"),
        (Seen("POST", "/c", headers=TE_SEEN, body=b"x" * 50),),
    ),
    Valid(
        "http10_without_host",
        head(b"GET /old HTTP/1.0"),
        (Seen("GET", "/old", version="1.0", headers={}),),
        closes=True,
    ),
    Valid(
        "http10_post_keep_alive",
        head(
            b"POST /k HTTP/1.0",
            b"Connection: keep-alive",
            b"Content-Length: 2",
            body=b"hi",
        )
        + head(b"GET /k2 HTTP/1.0"),
        (
            Seen(
                "POST",
                "/k",
                version="1.0",
                headers={"HTTP_CONNECTION": "keep-alive", "CONTENT_LENGTH": "2"},
                body=b"hi",
            ),
            Seen("GET", "/k2", version="1.0", headers={}),
        ),
        closes=True,
    ),
    Valid(
        "value_whitespace_trimmed",
        head(b"GET / HTTP/1.1", HOST, b"X-A: \t a  b \t "),
        (Seen("GET", "/", headers=host(HTTP_X_A="a  b")),),
    ),
    Valid(
        "value_without_space",
        head(b"GET / HTTP/1.1", b"Host:x", b"X-A:v"),
        (Seen("GET", "/", headers={"HTTP_HOST": "x", "HTTP_X_A": "v"}),),
    ),
    Valid(
        "value_obs_text",
        head(b"GET / HTTP/1.1", HOST, b"X-Name: Ren\xe9 \xff"),
        (Seen("GET", "/", headers=host(HTTP_X_NAME="Ren\xe9 \xff")),),
    ),
    Valid(
        "empty_value",
        head(b"GET / HTTP/1.1", HOST, b"X-Empty:"),
        (Seen("GET", "/", headers=host(HTTP_X_EMPTY="")),),
    ),
    Valid(
        "repeated_field_joined",
        head(b"GET / HTTP/1.1", HOST, b"Accept: a/b", b"accept: c/d"),
        (Seen("GET", "/", headers=host(HTTP_ACCEPT="a/b,c/d")),),
    ),
    Valid(
        "token_chars_in_name",
        head(b"GET / HTTP/1.1", HOST, b"X-!#$%&'*+.^`|~1: t"),
        (Seen("GET", "/", headers=host(**{"HTTP_X_!#$%&'*+.^`|~1": "t"})),),
    ),
    Valid(
        "cookie_and_quotes",
        head(b"GET / HTTP/1.1", HOST, b'Cookie: a=1; b="two words"'),
        (Seen("GET", "/", headers=host(HTTP_COOKIE='a=1; b="two words"')),),
    ),
    Valid(
        "host_with_port",
        head(b"GET / HTTP/1.1", b"Host: example.com:8080"),
        (Seen("GET", "/", headers={"HTTP_HOST": "example.com:8080"}),),
    ),
    Valid(
        "host_ipv6",
        head(b"GET / HTTP/1.1", b"Host: [::1]:8774"),
        (Seen("GET", "/", headers={"HTTP_HOST": "[::1]:8774"}),),
    ),
    Valid(
        "hundred_header_lines",
        head(b"GET / HTTP/1.1", HOST, *(b"X-%d: v" % i for i in range(99))),
        (Seen("GET", "/", headers=host(**{f"HTTP_X_{i}": "v" for i in range(99)})),),
    ),
    Valid(  # the line as sent, without its CRLF, is the limit
        "header_line_at_limit",
        head(b"GET / HTTP/1.1", HOST, b"X-L: " + b"l" * (MAX_LINE - 5)),
        (Seen("GET", "/", headers=host(HTTP_X_L="l" * (MAX_LINE - 5))),),
    ),
    Valid(
        "request_target_at_limit",
        head(b"GET /" + b"t" * (MAX_LINE - 1) + b" HTTP/1.1", HOST),
        (Seen("GET", "/" + "t" * (MAX_LINE - 1)),),
    ),
    Valid(
        "expect_continue_with_body_sent",
        head(
            b"PUT /e HTTP/1.1",
            HOST,
            b"Expect: 100-continue",
            b"Content-Length: 3",
            body=b"abc",
        ),
        (
            Seen(
                "PUT",
                "/e",
                headers=host(HTTP_EXPECT="100-continue", CONTENT_LENGTH="3"),
                body=b"abc",
            ),
        ),
    ),
    Valid(
        "leading_empty_line",
        b"\r\n" + head(b"GET /after-crlf HTTP/1.1", HOST),
        (Seen("GET", "/after-crlf"),),
    ),
    Valid(
        "pipelined_three",
        head(b"GET /1 HTTP/1.1", HOST)
        + head(b"POST /2 HTTP/1.1", HOST, b"Content-Length: 1", body=b"2")
        + post_chunked(b"1\r\n3\r\n0\r\n\r\n"),
        (
            Seen("GET", "/1"),
            Seen("POST", "/2", headers=host(CONTENT_LENGTH="1"), body=b"2"),
            Seen("POST", "/c", headers=TE_SEEN, body=b"3"),
        ),
    ),
    Valid(
        "connection_close_token_list",
        head(b"GET / HTTP/1.1", HOST, b"Connection: keep-alive, Close"),
        (Seen("GET", "/", headers=host(HTTP_CONNECTION="keep-alive, Close")),),
        closes=True,
    ),
    Valid(
        "upgrade_without_body_served_plainly",
        head(b"GET /ws HTTP/1.1", HOST, b"Connection: Upgrade", b"Upgrade: websocket"),
        (
            Seen(
                "GET",
                "/ws",
                headers=host(HTTP_CONNECTION="Upgrade", HTTP_UPGRADE="websocket"),
            ),
        ),
        closes=False,  # no 101: the connection goes on as HTTP/1.1
    ),
    Valid(
        "dashed_forwarded_header",
        head(b"GET / HTTP/1.1", HOST, b"X-Forwarded-Proto: https"),
        (Seen("GET", "/", headers=host(HTTP_X_FORWARDED_PROTO="https")),),
    ),
    # --- the defects the lead is fixing (xfail until they land) ---
    Valid(
        "pipelined_after_connection_close",
        head(b"GET /first HTTP/1.1", HOST, b"Connection: close")
        + head(b"GET /second HTTP/1.1", HOST),
        (Seen("GET", "/first", headers=host(HTTP_CONNECTION="close")),),
        closes=True,
    ),
    Valid(
        "pipelined_after_http10",
        head(b"GET /first HTTP/1.0") + head(b"GET /second HTTP/1.0"),
        (Seen("GET", "/first", version="1.0", headers={}),),
        closes=True,
    ),
    Valid(
        "underscore_header_dropped",
        head(b"GET / HTTP/1.1", HOST, b"X_Forwarded_Proto: http"),
        (Seen("GET", "/"),),
    ),
    Valid(
        "underscore_header_cannot_spoof_dashed",
        head(
            b"GET / HTTP/1.1",
            HOST,
            b"X-Forwarded-Proto: https",
            b"X_Forwarded_Proto: http",
        ),
        (Seen("GET", "/", headers=host(HTTP_X_FORWARDED_PROTO="https")),),
    ),
    Valid(
        "upgrade_with_body",
        head(
            b"POST /up HTTP/1.1",
            HOST,
            b"Connection: Upgrade",
            b"Upgrade: websocket",
            b"Content-Length: 5",
            body=b"hello",
        ),
        (
            Seen(
                "POST",
                "/up",
                headers=host(
                    HTTP_CONNECTION="Upgrade",
                    HTTP_UPGRADE="websocket",
                    CONTENT_LENGTH="5",
                ),
                body=b"hello",
            ),
        ),
        closes=False,  # no 101: the connection goes on as HTTP/1.1
    ),
]

G11 = b"GET / HTTP/1.1"
P11 = b"POST / HTTP/1.1"


def bad_chunks(chunks: bytes) -> bytes:
    return head(P11, HOST, CHUNKED, body=chunks)


INVALID: list[Invalid] = [
    # --- Content-Length and Transfer-Encoding ---
    Invalid(
        "cl_and_te", head(P11, HOST, b"Content-Length: 3", CHUNKED, body=b"0\r\n\r\n")
    ),
    Invalid(
        "te_and_cl", head(P11, HOST, CHUNKED, b"Content-Length: 3", body=b"0\r\n\r\n")
    ),
    Invalid(
        "cl_twice_same",
        head(P11, HOST, b"Content-Length: 1", b"Content-Length: 1", body=b"a"),
    ),
    Invalid(
        "cl_twice_differ",
        head(P11, HOST, b"Content-Length: 1", b"Content-Length: 2", body=b"ab"),
    ),
    Invalid("cl_list", head(P11, HOST, b"Content-Length: 1,1", body=b"a")),
    Invalid("cl_negative", head(P11, HOST, b"Content-Length: -1")),
    Invalid("cl_plus", head(P11, HOST, b"Content-Length: +1", body=b"a")),
    Invalid("cl_hex", head(P11, HOST, b"Content-Length: 0x1", body=b"a")),
    Invalid("cl_letters", head(P11, HOST, b"Content-Length: one")),
    Invalid("cl_inner_space", head(P11, HOST, b"Content-Length: 1 2")),
    Invalid("cl_empty", head(P11, HOST, b"Content-Length:")),
    Invalid("cl_overflow", head(P11, HOST, b"Content-Length: 99999999999999999999999")),
    Invalid("te_gzip", head(P11, HOST, b"Transfer-Encoding: gzip")),
    Invalid("te_identity", head(P11, HOST, b"Transfer-Encoding: identity")),
    Invalid(
        "te_gzip_chunked",
        head(P11, HOST, b"Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"),
    ),
    Invalid(
        "te_chunked_gzip",
        head(P11, HOST, b"Transfer-Encoding: chunked, gzip", body=b"0\r\n\r\n"),
    ),
    Invalid("te_twice", head(P11, HOST, CHUNKED, CHUNKED, body=b"0\r\n\r\n")),
    Invalid(
        "te_chunked_then_gzip_lines",
        head(P11, HOST, CHUNKED, b"Transfer-Encoding: gzip", body=b"0\r\n\r\n"),
    ),
    Invalid(
        "te_xchunked",
        head(P11, HOST, b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n"),
    ),
    Invalid("te_in_http10", head(b"POST / HTTP/1.0", CHUNKED, body=b"0\r\n\r\n")),
    Invalid(
        "te_folded",
        head(P11, HOST, b"Transfer-Encoding:", b" chunked", body=b"0\r\n\r\n"),
    ),
    # --- chunk framing ---
    Invalid("chunk_size_not_hex", bad_chunks(b"g\r\nx\r\n0\r\n\r\n")),
    Invalid("chunk_size_0x", bad_chunks(b"0x1\r\na\r\n0\r\n\r\n")),
    Invalid("chunk_size_negative", bad_chunks(b"-1\r\na\r\n0\r\n\r\n")),
    Invalid("chunk_size_plus", bad_chunks(b"+1\r\na\r\n0\r\n\r\n")),
    Invalid("chunk_size_empty", bad_chunks(b"\r\na\r\n0\r\n\r\n")),
    Invalid("chunk_size_overflow", bad_chunks(b"fffffffffffffffff\r\na\r\n0\r\n\r\n")),
    Invalid("chunk_size_space_before", bad_chunks(b" 1\r\na\r\n0\r\n\r\n")),
    Invalid("chunk_size_space_after", bad_chunks(b"1 \r\na\r\n0\r\n\r\n")),
    Invalid("chunk_size_bare_lf", bad_chunks(b"1\na\r\n0\r\n\r\n")),
    Invalid("chunk_ext_bad_char", bad_chunks(b"1;a\x01b\r\na\r\n0\r\n\r\n")),
    Invalid("chunk_ext_space_in_name", bad_chunks(b"1;a b=c\r\na\r\n0\r\n\r\n")),
    Invalid("chunk_data_too_long", bad_chunks(b"1\r\nab\r\n0\r\n\r\n")),
    Invalid("chunk_data_no_crlf", bad_chunks(b"1\r\na0\r\n\r\n")),
    Invalid("chunk_data_bare_lf", bad_chunks(b"1\r\na\n0\r\n\r\n")),
    Invalid("trailer_space_in_name", bad_chunks(b"0\r\nX Y: v\r\n\r\n")),
    Invalid("trailer_folded", bad_chunks(b"0\r\nX-T: v\r\n\tw\r\n\r\n")),
    Invalid("trailer_nul", bad_chunks(b"0\r\nX-T: a\x00b\r\n\r\n")),
    # --- request line ---
    Invalid("two_spaces_after_method", head(b"GET  / HTTP/1.1", HOST)),
    Invalid("two_spaces_before_version", head(b"GET /  HTTP/1.1", HOST)),
    Invalid("tab_separators", head(b"GET\t/\tHTTP/1.1", HOST)),
    Invalid("space_in_target", head(b"GET /a b HTTP/1.1", HOST)),
    Invalid("control_in_target", head(b"GET /a\x01b HTTP/1.1", HOST)),
    Invalid("nul_in_target", head(b"GET /a\x00b HTTP/1.1", HOST)),
    Invalid("del_in_target", head(b"GET /a\x7fb HTTP/1.1", HOST)),
    Invalid("trailing_space_after_version", head(b"GET / HTTP/1.1 ", HOST)),
    Invalid("extra_token", head(b"GET / HTTP/1.1 extra", HOST)),
    Invalid("method_unknown", head(b"FROB / HTTP/1.1", HOST)),
    Invalid("method_lowercase", head(b"get / HTTP/1.1", HOST)),
    Invalid("method_control_char", head(b"G\x01T / HTTP/1.1", HOST)),
    Invalid("method_missing", head(b" / HTTP/1.1", HOST)),
    Invalid("connect", head(b"CONNECT x:443 HTTP/1.1", HOST)),
    Invalid("version_http09", head(b"GET /")),
    Invalid("version_missing_minor", head(b"GET / HTTP/1", HOST)),
    Invalid("version_two_digits", head(b"GET / HTTP/11", HOST)),
    Invalid("version_lowercase", head(b"GET / http/1.1", HOST)),
    Invalid("version_letters", head(b"GET / HTTP/x.y", HOST)),
    Invalid("version_2", head(b"GET / HTTP/2.0", HOST), status=b"505"),
    Invalid("version_3", head(b"GET / HTTP/3.0", HOST)),
    Invalid(  # its target one byte over
        "request_line_too_long",
        head(b"GET /" + b"a" * MAX_LINE + b" HTTP/1.1", HOST),
        status=b"414",
    ),
    Invalid(
        "tls_hello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 32
    ),
    Invalid("bare_cr_line_ends", b"GET / HTTP/1.1\rHost: x\r\r"),
    # --- header fields ---
    Invalid("space_before_colon", head(G11, b"Host : x")),
    Invalid("tab_before_colon", head(G11, HOST, b"X-A\t: v")),
    Invalid("space_in_name", head(G11, HOST, b"X A: v")),
    Invalid("no_colon", head(G11, HOST, b"X-A v")),
    Invalid("empty_name", head(G11, HOST, b": v")),
    Invalid("non_token_name", head(G11, HOST, b"X@A: v")),
    Invalid("name_with_slash", head(G11, HOST, b"X/A: v")),
    Invalid("non_ascii_name", head(G11, HOST, b"X-\xe9: v")),
    Invalid("control_in_name", head(G11, HOST, b"X-\x01: v")),
    Invalid("nul_in_name", head(G11, HOST, b"X-\x00A: v")),
    Invalid("nul_in_value", head(G11, HOST, b"X-A: a\x00b")),
    Invalid("control_in_value", head(G11, HOST, b"X-A: a\x01b")),
    Invalid("del_in_value", head(G11, HOST, b"X-A: a\x7fb")),
    Invalid("cr_in_value", head(G11, HOST, b"X-A: a\rb")),
    Invalid("lf_in_value", head(G11, HOST, b"X-A: a\nX-B: b")),
    Invalid("obs_fold_space", head(G11, HOST, b"X-A: a", b" b")),
    Invalid("obs_fold_tab", head(G11, HOST, b"X-A: a", b"\tb")),
    Invalid("first_line_folded", head(G11, b" Host: x")),
    Invalid(
        "header_line_too_long",
        head(G11, HOST, b"X-L: " + b"l" * MAX_LINE),
        status=b"431",
    ),
    Invalid(
        "header_line_one_over",
        head(G11, HOST, b"X-L: " + b"l" * (MAX_LINE - 4)),
        status=b"431",
    ),
    Invalid(
        "too_many_headers",
        head(G11, HOST, *(b"X-%d: v" % i for i in range(100))),
        status=b"431",
    ),
    # --- Host and the target's authority ---
    Invalid("missing_host", head(G11, b"X-A: v")),
    Invalid("two_hosts", head(G11, b"Host: a", b"Host: b")),
    Invalid("two_hosts_case", head(G11, b"Host: a", b"HOST: a")),
    Invalid("host_list", head(G11, b"Host: a, b")),
    Invalid("host_userinfo", head(G11, b"Host: u@h")),
    Invalid("host_space", head(G11, b"Host: a b")),
    Invalid("host_bad_port", head(G11, b"Host: h:x1")),
    Invalid("host_bad_ipv6", head(G11, b"Host: [::1")),
    Invalid("absolute_userinfo", head(b"GET http://u@h/ HTTP/1.1", HOST)),
    Invalid("absolute_unknown_scheme", head(b"GET ftp://h/ HTTP/1.1", HOST)),
    Invalid("absolute_no_authority", head(b"GET http:///p HTTP/1.1", HOST)),
    Invalid("relative_target", head(b"GET p HTTP/1.1", HOST)),
    Invalid("asterisk_for_get", head(b"GET * HTTP/1.1", HOST)),
]
