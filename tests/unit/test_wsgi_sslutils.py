"""TLS: start-up checks of the [ssl] files, and real handshakes in process."""

from __future__ import annotations

import contextlib
import logging
import ssl

import pytest
from eventlet.green import socket as green_socket
from eventlet.green import ssl as green_ssl

from tests.helpers import openssl, self_signed_cert
from tests.unit._wsgi_inproc import RecordingApp, make_conf, running, scheduler  # noqa: F401
from wsgisvc import sslutils, wsgi

REQUEST = b"GET /tls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA, a server cert for 127.0.0.1 and a client cert, made with openssl."""
    d = tmp_path_factory.mktemp("certs")
    self_signed_cert(d, "ca", cn="test-ca")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=d,
        )
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            f"{name}.pem",
            cwd=d,
        )
    return d


def _tls_conf(certs, **extra):
    return make_conf(
        **{
            "ssl.cert_file": str(certs / "server.pem"),
            "ssl.key_file": str(certs / "server.key"),
            **extra,
        }
    )


def _client_context(certs, with_cert: bool) -> ssl.SSLContext:
    context = green_ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(certs / "ca.pem"))
    if with_cert:
        context.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    return context


def _tls_request(server, context) -> bytes:
    raw_sock = green_socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock = context.wrap_socket(raw_sock, server_hostname="127.0.0.1")
    try:
        sock.sendall(REQUEST)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data
    finally:
        sock.close()


@pytest.mark.timeout(60)
def test_tls_round_trip(certs):
    app = RecordingApp()
    with running(_tls_conf(certs), app, use_ssl=True) as server:
        assert server.url.startswith("https://127.0.0.1:")
        answer = _tls_request(server, _client_context(certs, with_cert=False))
    assert answer.startswith(b"HTTP/1.1 200")
    assert app.calls[-1]["wsgi.url_scheme"] == "https"


@pytest.mark.timeout(60)
def test_ca_file_requires_a_client_certificate(certs):
    conf = _tls_conf(certs, **{"ssl.ca_file": str(certs / "ca.pem")})
    with running(conf, RecordingApp(), use_ssl=True) as server:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _tls_request(server, _client_context(certs, with_cert=False))
        answer = _tls_request(server, _client_context(certs, with_cert=True))
    assert answer.startswith(b"HTTP/1.1 200")


@pytest.mark.timeout(60)
def test_plain_http_to_a_tls_port_does_not_hurt_the_server(certs):
    with running(_tls_conf(certs), RecordingApp(), use_ssl=True) as server:
        plain = green_socket.create_connection(("127.0.0.1", server.port), timeout=5)
        plain.sendall(REQUEST)
        plain.settimeout(5)
        while plain.recv(65536):
            pass
        plain.close()
        answer = _tls_request(server, _client_context(certs, with_cert=False))
    assert answer.startswith(b"HTTP/1.1 200")


def test_missing_cert_file_is_a_clear_error(certs, tmp_path):
    conf = _tls_conf(certs, **{"ssl.cert_file": str(tmp_path / "missing.pem")})
    with pytest.raises(
        sslutils.TLSConfigError, match="cert_file.*missing.pem.*not exist"
    ):
        wsgi.Server(conf, "t", RecordingApp(), "127.0.0.1", 0, use_ssl=True)


def test_key_file_not_set_is_a_clear_error(certs):
    conf = _tls_conf(certs, **{"ssl.key_file": None})
    with pytest.raises(sslutils.TLSConfigError, match="key_file must be set"):
        sslutils.validate(conf)


def test_key_that_is_no_key_is_a_clear_error(certs, tmp_path):
    bogus = tmp_path / "bogus.key"
    bogus.write_text("not a key\n")
    conf = _tls_conf(certs, **{"ssl.key_file": str(bogus)})
    with pytest.raises(sslutils.TLSConfigError, match="cannot load.*bogus.key"):
        sslutils.make_context(conf)


def test_unknown_tls_version_is_a_clear_error(certs):
    with pytest.raises(sslutils.TLSConfigError, match="version 'SSLv3'"):
        sslutils.validate(_tls_conf(certs, **{"ssl.version": "SSLv3"}))


def test_version_sets_the_minimum(certs):
    context = sslutils.make_context(_tls_conf(certs, **{"ssl.version": "TLSv1_3"}))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3


def test_is_enabled(certs):
    assert sslutils.is_enabled(_tls_conf(certs))
    assert not sslutils.is_enabled(make_conf())


@pytest.mark.timeout(60)
def test_a_failed_handshake_is_one_debug_line_naming_the_peer(certs, caplog):
    """The line every runtime logs (``sslutils.handshake_failed``; the gunicorn
    worker's: tests/functional/test_gunicorn.py); the server serves on."""
    caplog.set_level(logging.DEBUG, logger="wsgisvc")
    with running(_tls_conf(certs), RecordingApp(), use_ssl=True) as server:
        garbage = green_socket.create_connection(("127.0.0.1", server.port), 5)
        peer = f"127.0.0.1:{garbage.getsockname()[1]}"
        garbage.sendall(b"\x16\x03\x01\x00\x04junk and more junk\r\n\r\n")
        garbage.settimeout(5)
        with contextlib.suppress(ConnectionResetError):  # closed unread
            while garbage.recv(65536):
                pass
        garbage.close()
        answer = _tls_request(server, _client_context(certs, with_cert=False))
    assert answer.startswith(b"HTTP/1.1 200")
    failed = [r for r in caplog.records if "TLS handshake with" in r.getMessage()]
    assert [(r.levelno, r.getMessage().split(" failed: ")[0]) for r in failed] == [
        (logging.DEBUG, f"{server.name}: TLS handshake with {peer}")
    ]
