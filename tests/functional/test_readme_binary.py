"""The README's "Writing a service binary" snippet, run verbatim as a binary."""

from __future__ import annotations

import re
import signal

import pytest

from tests.functional._wsgi_util import ROOT, api_server, start_api, write_config
from tests.helpers import PYTHON, wait_for

pytestmark = pytest.mark.timeout(90)


def readme_binary(tmp_path):
    """The first python block under the README's heading, written to a file."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Writing a service binary", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    path = tmp_path / "mybinary.py"
    path.write_text(code)
    return [PYTHON, str(path)]


def test_the_snippet_serves_and_stops(tmp_path):
    command = readme_binary(tmp_path)
    with api_server(tmp_path, workers=2, command=command) as api:
        assert len(api.workers()) == 2
        assert api.ping_pid() in api.workers()
        # the parent syncs the table and registers the row once workers serve
        wait_for(lambda: b"wsgisvc-osapi" in api.request("/v1/services")[2])
        api.proc.send_signal(signal.SIGTERM)
        assert api.proc.wait(timeout=30) == 0
    assert "Lost the database" not in api.log()


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
