"""wsgisvc.urlmap: a paste composite on the longest path prefix, loaded by
PasteDeploy from a paste file as an API's would be."""

from __future__ import annotations

import pytest
from paste import deploy
from webob import Request

from wsgisvc import urlmap
from wsgisvc.sample import urlmap as old_name

PASTE = """
[composite:main]
use = call:{module}:urlmap_factory
/ = root
/v1 = v1
/v1/admin = admin

[app:root]
paste.app_factory = tests.unit.test_urlmap:echo_factory
name = root

[app:v1]
paste.app_factory = tests.unit.test_urlmap:echo_factory
name = v1

[app:admin]
paste.app_factory = tests.unit.test_urlmap:echo_factory
name = admin
"""


def echo_factory(global_conf, name):
    def app(environ, start_response):
        body = f"{name} {environ['SCRIPT_NAME']!r} {environ['PATH_INFO']!r}".encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    return app


def load(tmp_path, module: str = "wsgisvc.urlmap", text: str = PASTE):
    path = tmp_path / "paste.ini"
    path.write_text(text.format(module=module))
    return deploy.loadapp(f"config:{path}")


@pytest.mark.parametrize(
    ("path", "answer"),
    [
        ("/", "root '' '/'"),
        ("/versions", "root '' '/versions'"),
        ("/v1", "v1 '/v1' ''"),
        ("/v1/servers", "v1 '/v1' '/servers'"),
        ("/v1/admin/users", "admin '/v1/admin' '/users'"),
        ("/v10", "root '' '/v10'"),  # a prefix is a whole path segment
    ],
)
def test_the_longest_prefix_wins_and_moves_to_script_name(tmp_path, path, answer):
    response = Request.blank(path).get_response(load(tmp_path))
    assert response.status_int == 200
    assert response.text == answer


def test_a_path_under_no_prefix_is_404(tmp_path):
    text = PASTE.replace("/ = root\n", "")
    response = Request.blank("/other").get_response(load(tmp_path, text=text))
    assert response.status_int == 404


def test_a_key_that_is_not_a_path_is_refused_at_load(tmp_path):
    text = PASTE.replace("/ = root\n", "domain example.com = root\n")
    with pytest.raises(ValueError, match="must be a path starting with /"):
        load(tmp_path, text=text)


def test_the_old_name_still_loads(tmp_path):
    app = load(tmp_path, module="wsgisvc.sample.urlmap")
    assert isinstance(app, urlmap.URLMap)
    assert old_name.urlmap_factory is urlmap.urlmap_factory
