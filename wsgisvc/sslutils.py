"""TLS for the WSGI server: the ``[ssl]`` options, checked at start, and wrapping.

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


def wrap(conf: cfg.ConfigOpts, sock, context: ssl.SSLContext | None = None):
    """Wrap an accepted socket (green, on eventlet) as the server side of a TLS
    connection.

    The handshake runs on first I/O, in the connection's own greenthread or
    thread, so a slow or hostile client never holds up the accept loop.
    """
    if context is None:
        context = make_context(conf)
    if backend.NAME == "threading":
        return context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
    from eventlet.green import ssl as green_ssl

    return green_ssl.GreenSSLSocket(
        sock, server_side=True, do_handshake_on_connect=False, _context=context
    )
