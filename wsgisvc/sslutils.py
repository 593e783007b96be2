"""TLS for the WSGI server: the ``[ssl]`` options, checked at start; wrapping an
accepted socket, and the log line of a failed handshake, for every runtime.

The files are checked when the server is built (before any fork), so a missing
or unreadable certificate or key is one clear start-up error instead of a
handshake failure on the first client. One ``SSLContext`` is built per server
and reused for every connection.
"""

import os
import ssl

from oslo_config import cfg

from wsgisvc import backend, opts
from wsgisvc.errors import TLSConfigError

_VERSIONS = {
    "tlsv1_2": ssl.TLSVersion.TLSv1_2,
    "tlsv1_3": ssl.TLSVersion.TLSv1_3,
}


def register_opts(conf: cfg.ConfigOpts) -> None:
    opts.register(conf, opts.ssl_opts, opts.ssl_group.name)


def is_enabled(conf: cfg.ConfigOpts) -> bool:
    """True when a certificate or key is configured (TLS was asked for)."""
    register_opts(conf)
    return bool(conf.ssl.cert_file or conf.ssl.key_file)


def _check_readable(option: str, path: str | None) -> None:
    if not path:
        raise TLSConfigError(f"[ssl] {option} must be set to serve TLS")
    if not os.path.isfile(path):
        raise TLSConfigError(f"[ssl] {option} {path!r} does not exist")
    if not os.access(path, os.R_OK):
        raise TLSConfigError(f"[ssl] {option} {path!r} is not readable")


def validate(conf: cfg.ConfigOpts) -> None:
    """Raise :class:`TLSConfigError` unless the ``[ssl]`` files can be used."""
    register_opts(conf)
    _check_readable("cert_file", conf.ssl.cert_file)
    _check_readable("key_file", conf.ssl.key_file)
    if conf.ssl.ca_file:
        _check_readable("ca_file", conf.ssl.ca_file)
    if conf.ssl.version and conf.ssl.version.lower() not in _VERSIONS:
        raise TLSConfigError(
            f"[ssl] version {conf.ssl.version!r} is not one of TLSv1_2, TLSv1_3"
        )


def make_context(conf: cfg.ConfigOpts) -> ssl.SSLContext:
    """Build the server context: cert and key, client certs when ca_file is set."""
    validate(conf)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(conf.ssl.cert_file, conf.ssl.key_file)
        if conf.ssl.ca_file:
            context.load_verify_locations(cafile=conf.ssl.ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        if conf.ssl.ciphers:
            context.set_ciphers(conf.ssl.ciphers)
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(
            f"[ssl] cannot load cert_file {conf.ssl.cert_file!r} / key_file "
            f"{conf.ssl.key_file!r}: {exc}"
        ) from exc
    if conf.ssl.version:
        context.minimum_version = _VERSIONS[conf.ssl.version.lower()]
    return context


def wrap(sock, context: ssl.SSLContext, suppress_ragged_eofs: bool = True):
    """An accepted socket wrapped as the server side of a TLS connection, not
    yet handshaken: every runtime (green, threads, the gunicorn worker) wraps
    here, and drives the handshake its own way (a blocking ``do_handshake``
    in the connection's greenthread, a non-blocking one in the epoll thread),
    so a slow or hostile client never holds up the accept loop.

    On eventlet, ``sock`` is green and so is what wraps it, whether or not
    ``context`` was built before ``ssl`` was patched.
    """
    if backend.NAME == "threading":
        return context.wrap_socket(
            sock,
            server_side=True,
            do_handshake_on_connect=False,
            suppress_ragged_eofs=suppress_ragged_eofs,
        )
    from eventlet.green import ssl as green_ssl

    return green_ssl.GreenSSLSocket(
        sock,
        server_side=True,
        do_handshake_on_connect=False,
        suppress_ragged_eofs=suppress_ragged_eofs,
        _context=context,
    )


def handshake_failed(log, name: str, peer, exc: BaseException) -> None:
    """Log a failed handshake, the same on every runtime: at debug, as the
    client's failure (a scanner, plain HTTP on the TLS port, a certificate
    refused, a timeout), not the server's; the worker serves on.

    ``log`` is stdlib's or gunicorn's; ``peer`` the address ``accept()`` gave.
    """
    log.debug("%s: TLS handshake with %s failed: %s", name, _peer(peer), exc)


def _peer(address) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return "a unix socket client"
