"""The checks a request head must pass before an application sees it.

llhttp (``wsgisvc.http.parser``) already refuses what RFC 9112 calls invalid:
HTTP/0.9-style lines aside, control characters in values, obsolete line
folding, signed or listed ``Content-Length``, duplicate ``Content-Length``,
``Content-Length`` with ``Transfer-Encoding``, malformed chunk framing. What it
accepts but two parsers could still read differently is refused here: a
``Transfer-Encoding`` other than one ``chunked`` (or any in HTTP/1.0), a
missing or repeated ``Host``, a ``Host`` that is not one authority. Each
refusal is a :class:`BadRequest`: the status is sent, the connection closed.
"""

import re

# A cap on the number of header lines, as http.client has: beyond it a client
# only makes the server spend memory.
MAX_HEADERS = 100

# RFC 3986 authority without userinfo: reg-name / IPv4 / IP-literal, then port.
_AUTHORITY = re.compile(
    r"(?:[A-Za-z0-9\-._~!$&'()*+;=]|%[0-9A-Fa-f]{2})*"
    r"|\[[0-9A-Fa-f:.]+\]"
    r"|\[v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+;=:]+\]"
)
_PORT = re.compile(r"[0-9]*")


class BadRequest(Exception):
    """A request that must not reach the application.

    ``status`` is the status line sent back before the connection closes.
    """

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def bad(reason: str) -> BadRequest:
    return BadRequest("400 Bad Request", reason)


def check_framing(
    lengths: list[str], codings: list[str], hosts: list[str], http11: bool
) -> None:
    """Refuse a body length or a target host that parsers could read differently.

    RFC 9112 section 6: any ``Transfer-Encoding`` but a single ``chunked`` is
    grounds for smuggling (llhttp accepts ``gzip, chunked``), and so is one in
    HTTP/1.0, which has no chunked coding. Section 3.2: HTTP/1.1 needs exactly
    one ``Host``; a ``Host`` holding a list lets a front proxy route on one
    name while the application reads another.
    """
    if lengths and codings:
        raise bad("both Content-Length and Transfer-Encoding")
    if len(lengths) > 1:
        raise bad("duplicate Content-Length")
    if codings:
        if not http11:
            raise bad("Transfer-Encoding in an HTTP/1.0 request")
        if len(codings) > 1 or codings[0].lower() != "chunked":
            raise bad("Transfer-Encoding other than chunked")
    if len(hosts) > 1 or (http11 and not hosts):
        raise bad("HTTP/1.1 needs exactly one Host header")
    if hosts and not valid_authority(hosts[0]):
        raise bad("Host is not one valid authority")


def valid_authority(value: str) -> bool:
    """True when ``value`` is one ``host[:port]`` (RFC 3986, no userinfo).

    A comma is refused although reg-name allows it: no host name holds one,
    and ``Host: a, b`` is how a list gets past a proxy that reads the first.
    """
    if value.startswith("["):
        end = value.find("]") + 1
        host, rest = value[:end], value[end:]
        if not end or (rest and rest[0] != ":"):
            return False
        port = rest[1:]
    else:
        host, _, port = value.partition(":")
    return bool(_AUTHORITY.fullmatch(host)) and bool(_PORT.fullmatch(port))


def split_target(target: str) -> tuple[str, str, str | None]:
    """``(path, query, authority)`` of a request target (RFC 9112 section 3.2).

    origin-form ``/p?q`` gives ``("/p", "q", None)``; absolute-form
    ``http://h:8/p?q`` gives ``("/p", "q", "h:8")``, whose authority replaces
    ``Host``; asterisk-form ``*`` (OPTIONS) passes as the path.
    """
    authority = None
    if target[:1] != "/" and target != "*":
        scheme, sep, rest = target.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            raise bad("request target is neither origin-form nor absolute-form")
        end = len(rest)
        for stop in "/?":
            at = rest.find(stop)
            if 0 <= at < end:
                end = at
        authority, rest = rest[:end], rest[end:]
        if not authority or "@" in authority or not valid_authority(authority):
            raise bad("absolute-form target has no valid authority")
        target = rest if rest[:1] == "/" else "/" + rest
    path, _, query = target.partition("?")
    path = path.partition("#")[0]
    return path, query, authority


def tokens(value: str) -> set[str]:
    """A header holding a token list (``Connection``), as its lower-case tokens
    (RFC 9110 section 5.6.1): ``keep-alive, close`` closes."""
    return {token.strip().lower() for token in value.split(",")}
