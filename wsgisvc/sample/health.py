"""The healthcheck's stopping gate: 503 from the moment the server stops.

oslo.middleware's healthcheck backends only see the port, and are found through
entry points; the server's state is per process. So a filter in front of the
healthcheck app reads the ``wsgisvc.server`` the wsgisvc server puts in every
environ and answers 503 once that server is stopping (a request read after
``stop()`` on a connection that was busy). Outside wsgisvc's server (e.g.
gunicorn) there is no such key and the healthcheck answers on its own.
"""

STOPPING_BODY = b"server is stopping\n"


class StoppingGate:
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


def filter_factory(global_conf, **local_conf):
    """paste.filter_factory for ``[filter:stopping]``."""
    return StoppingGate
