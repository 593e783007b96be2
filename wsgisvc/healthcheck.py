"""What a load balancer's health check sees while a process stops: 503.

Two pieces, one for each way a process stops serving. ``DrainingHealthcheck``
is an oslo.middleware healthcheck backend: 503 while this process drains.
``StoppingGate`` is a paste filter in front of the healthcheck app: 503 once
the server that read the request is stopping.

A load balancer, or a Kubernetes readiness probe, takes an instance out of
rotation when its healthcheck fails; it must see that before the listening
socket closes, or the connections it still sends are refused. With
``graceful_drain_delay`` a SIGTERM leaves the process serving for that long
(see ``wsgisvc.launcher``); this backend reports it unavailable meanwhile,
and oslo.middleware's healthcheck answers 503. Enable it by its entry point
name in the healthcheck app's ``backends`` (etc/api-paste.ini does)::

    [app:healthcheckapp]
    paste.app_factory = oslo_middleware:Healthcheck.app_factory
    backends = wsgisvc_draining

oslo.middleware finds backends through the ``oslo.middleware.healthcheck``
entry point group and hands them only the server's port: the drain is a state
of the whole process, so that is all it needs. The server's own state is per
server, so the gate reads the ``wsgisvc.server`` the wsgisvc server puts in
every environ, and answers 503 once that server is stopping (a request read
after ``stop()`` on a connection that was busy)::

    [pipeline:healthcheck]
    pipeline = stopping healthcheckapp

    [filter:stopping]
    paste.filter_factory = wsgisvc.healthcheck:stopping_filter_factory

Outside wsgisvc's server (under gunicorn) there is no such key and the
healthcheck answers on its own.
"""

from oslo_middleware.healthcheck import pluginbase

from wsgisvc import launcher

__all__ = ["DrainingHealthcheck", "StoppingGate", "stopping_filter_factory"]

STOPPING_BODY = b"server is stopping\n"


class DrainingHealthcheck(pluginbase.HealthcheckBaseExtension):
    """Unavailable from the moment a stop with graceful_drain_delay began."""

    def healthcheck(self, server_port: int) -> pluginbase.HealthcheckResult:
        if launcher.draining():
            return pluginbase.HealthcheckResult(
                available=False, reason="draining: this process is stopping"
            )
        return pluginbase.HealthcheckResult(available=True, reason="OK")


class StoppingGate:
    """A WSGI filter: 503 ``server is stopping`` once the serving server stops."""

    def __init__(self, application) -> None:
        self.application = application

    def __call__(self, environ, start_response):
        server = environ.get("wsgisvc.server")
        if server is not None and server.stopping:
            start_response(
                "503 Service Unavailable",
                [
                    ("Content-Type", "text/plain"),
                    ("Content-Length", str(len(STOPPING_BODY))),
                ],
            )
            return [STOPPING_BODY]
        return self.application(environ, start_response)


def stopping_filter_factory(global_conf, **local_conf):
    """``paste.filter_factory`` for a ``[filter:stopping]``."""
    return StoppingGate
