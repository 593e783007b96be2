"""A paste composite that dispatches on the longest matching path prefix.

PasteDeploy's configurations name ``egg:Paste#urlmap`` for this, which only
Paste provides, and wsgisvc does not depend on Paste: this is the part of it
an API needs to mount its versions, its ``/v1`` and a healthcheck side by
side. In a paste file::

    [composite:myapi]
    use = call:wsgisvc.urlmap:urlmap_factory
    / = versions
    /healthcheck = healthcheck
    /v1 = apiv1

The matched prefix moves from ``PATH_INFO`` to ``SCRIPT_NAME``, as a WSGI
mount point should; a path under no prefix is a 404. Paste's host and port
keys (``domain example.com /v1``) are not supported: a key that is not a path
is refused when the paste file loads.
"""


class URLMap:
    """A WSGI app that hands each request to the app of the longest prefix
    of its path in ``mapping`` (prefix: app)."""

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


def urlmap_factory(loader, global_conf: dict, **local_conf: str) -> URLMap:
    """paste.composite_factory: each ``/prefix = app`` line is one mount."""
    mapping = {}
    for prefix, app_name in local_conf.items():
        if not prefix.startswith("/"):
            raise ValueError(f"urlmap key {prefix!r} must be a path starting with /")
        mapping[prefix] = loader.get_app(app_name, global_conf=global_conf)
    return URLMap(mapping)


__all__ = ["URLMap", "urlmap_factory"]
