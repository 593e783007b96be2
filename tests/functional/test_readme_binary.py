"""The README's "Writing a service binary" snippet, run verbatim as a binary."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from tests.functional._wsgi_util import ROOT, start_api, write_config
from tests.helpers import PYTHON, wait_for
from wsgisvc import testing

pytestmark = pytest.mark.timeout(90)


def readme_binary(tmp_path):
    """The first python block under the README's heading, written to a file."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Writing a service binary", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    path = tmp_path / "mybinary.py"
    path.write_text(code)
    return [PYTHON, str(path)]


def test_the_snippet_serves_and_stops(tmp_path, backend):
    conf = write_config(tmp_path, workers=2)
    command = [*readme_binary(tmp_path), "--config-file", str(conf)]
    env = {"PYTHONPATH": str(ROOT)}
    with testing.serve(command, name="osapi", backend=backend, env=env) as api:
        workers = api.children()
        assert len(workers) == 2  # both serve: READY=1 said so
        assert json.loads(get(api, "/v1/ping"))["pid"] in workers
        # the parent syncs the table and registers the row once workers serve
        wait_for(lambda: b"wsgisvc-osapi" in get(api, "/v1/services"))
        assert api.stop() == 0
    assert "Lost the database" not in api.output()


def get(api: testing.RunningService, path: str) -> bytes:
    """The body of ``path``'s answer, an error's too (503 until the table is
    ready)."""
    try:
        with urllib.request.urlopen(api.url + path, timeout=10) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        return error.read()


def test_the_snippet_reports_a_start_up_error_in_one_line(tmp_path):
    conf = write_config(tmp_path, workers=2)
    paste = tmp_path / "api-paste.ini"
    paste.write_text(paste.read_text().replace("[composite:osapi]", "[composite:x]"))
    proc, log_path = start_api(tmp_path, conf, command=readme_binary(tmp_path))
    assert proc.wait(timeout=60) == 1
    output = log_path.read_text()
    assert "Traceback" not in output, output
    why = f"no application 'osapi' in paste configuration {paste}"
    # stdout and stderr share the output: the logged line, and no echo of it
    (line,) = [x for x in output.splitlines() if "cannot start" in x]
    assert line.endswith(f" mybinary.py cannot start: {why}"), output
