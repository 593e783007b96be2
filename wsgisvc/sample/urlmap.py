"""A paste composite that dispatches on the longest matching path prefix.

``egg:Paste#urlmap`` would pull in Paste, which wsgisvc does not depend on;
this is the small part of it the sample API needs. The matched prefix moves
from ``PATH_INFO`` to ``SCRIPT_NAME``, as a WSGI mount point should.
"""


class URLMap:
    def __init__(self, mapping: dict) -> None:
        # longest prefix first, so /v1 wins over /
        self._routes = sorted(
            ((prefix.rstrip("/"), app) for prefix, app in mapping.items()),
            key=lambda item: len(item[0]),
            reverse=True,
        )

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        for prefix, app in self._routes:
            if not prefix or path == prefix or path.startswith(prefix + "/"):
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
                environ["PATH_INFO"] = path[len(prefix) :]
                return app(environ, start_response)
        start_response(
            "404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")]
        )
        return [b"Not Found\n"]


def urlmap_factory(loader, global_conf, **local_conf):
    """paste.composite_factory: each ``/prefix = app`` line is one mount."""
    mapping = {}
    for prefix, app_name in local_conf.items():
        if not prefix.startswith("/"):
            raise ValueError(f"urlmap key {prefix!r} must be a path starting with /")
        mapping[prefix] = loader.get_app(app_name, global_conf=global_conf)
    return URLMap(mapping)
