"""An author's binary with options of its own (``binary.run(build,
register_opts=...)``, or registered by the app's paste factory as it loads):
a bad value is one line naming option, file and value, exit 1, nothing
bound; a SIGHUP with one keeps the old configuration serving; the
``restart_method`` option and keyword; ``<name>_socket_file``; options from
the environment. All of it from the outside, on both backends, through
``wsgisvc.testing``."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.functional._activation_util import unix_get
from tests.helpers import PYTHON, kill_group, wait_for
from wsgisvc import testing

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [PYTHON, "-m", "tests.functional._own_opts_binary"]
PROG = "_own_opts_binary.py"  # argv[0] under python -m: the module's file
NOT_AN_INT = "is not valid: invalid literal for int() with base 10: 'abc'"

start_service = testing.fixture()


def write_files(
    tmp_path: Path,
    register: str = "early",
    read_at_load: bool = False,
    default: str = "",
    myapi: str = "max_items = 5\n",
    workers: int = 2,
) -> Path:
    paste = tmp_path / "api-paste.ini"
    paste.write_text(
        "[app:myapi]\n"
        "paste.app_factory = tests.functional._own_opts_app:app_factory\n"
        f"register = {register}\n"
        f"read_at_load = {str(read_at_load).lower()}\n"
    )
    conf = tmp_path / "myapi.conf"
    conf.write_text(
        "[DEFAULT]\n"
        "myapi_listen = 127.0.0.1\n"
        "myapi_listen_port = 0\n"
        f"myapi_workers = {workers}\n"
        "myapi_in_services_table = false\n"
        f"api_paste_config = {paste}\n" + default + "[myapi]\n" + myapi
    )
    return conf


def environment(register: str = "early", **more: str) -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT), "MYAPI_REGISTER": register, **more}


def get(api: testing.RunningService) -> dict:
    with urllib.request.urlopen(api.url + "/", timeout=10) as response:
        return json.loads(response.read())


def run_to_exit(conf: Path, backend: str, env: dict[str, str]):
    """The binary run to its exit: (status, stdout, stderr)."""
    proc = subprocess.Popen(
        [*COMMAND, "--config-file", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env, "WSGISVC_BACKEND": backend},
        cwd=conf.parent,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=50)
    finally:
        kill_group(proc)
    return proc.returncode, out, err


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("register", "read_at_load"),
    [("early", False), ("late", False), ("late", True), ("global", False)],
    ids=[
        "register_opts",
        "in-the-paste-factory",
        "in-the-factory-read-at-load",
        "on-the-global-conf-in-the-factory",
    ],
)
def test_a_bad_value_of_an_own_option_is_one_line(
    tmp_path, backend, register, read_at_load
):
    conf = write_files(tmp_path, register, read_at_load, myapi="max_items = abc\n")

    status, out, err = run_to_exit(conf, backend, environment(register))

    assert status == 1, out + err
    assert err.splitlines() == [
        f"{PROG} cannot start: option [myapi] max_items: 'abc' in {conf} " + NOT_AN_INT
    ], out + err
    assert "listening" not in out + err  # nothing bound
    assert "Traceback" not in out + err


@pytest.mark.timeout(60)
def test_a_bad_value_from_the_environment_names_the_variable(tmp_path, backend):
    conf = write_files(tmp_path)
    env = environment(OS_MYAPI__MAX_ITEMS="abc")

    status, out, err = run_to_exit(conf, backend, env)

    assert status == 1, out + err
    assert err.splitlines() == [
        f"{PROG} cannot start: option [myapi] max_items: 'abc' in the "
        "environment variable OS_MYAPI__MAX_ITEMS " + NOT_AN_INT
    ], out + err


@pytest.mark.timeout(90)
def test_options_from_the_environment_override_the_files(
    tmp_path, backend, start_service
):
    conf = write_files(tmp_path, workers=2)
    env = environment(OS_DEFAULT__MYAPI_WORKERS="3", OS_MYAPI__MAX_ITEMS="8")

    api = start_service(
        [*COMMAND, "--config-file", str(conf)],
        name="myapi",
        backend=backend,
        env=env,
        cwd=tmp_path,
    )

    assert len(api.children()) == 3
    assert get(api)["max_items"] == 8
    assert api.stop() == 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("register", ["early", "late"])
def test_a_reload_with_a_bad_own_value_keeps_serving(
    tmp_path, backend, register, start_service
):
    conf = write_files(tmp_path, register)
    api = start_service(
        [*COMMAND, "--config-file", str(conf)],
        name="myapi",
        backend=backend,
        env=environment(register),
        cwd=tmp_path,
    )
    assert get(api)["max_items"] == 5
    workers = api.children()

    conf.write_text(conf.read_text().replace("max_items = 5", "max_items = abc"))
    api.signal(signal.SIGHUP)

    line = api.wait_for_output(r"reload refused: .*$").group(0)
    assert f"option [myapi] max_items: 'abc' in {conf} {NOT_AN_INT}" in line
    assert api.children() == workers
    assert get(api)["max_items"] == 5

    conf.write_text(conf.read_text().replace("max_items = abc", "max_items = 7"))
    api.signal(signal.SIGHUP)

    wait_for(lambda: get(api)["max_items"] == 7, timeout=30)
    assert "Traceback" not in api.output()
    assert api.stop() == 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("option", "keyword", "mutates"),
    [("mutate", None, True), (None, "mutate", True), ("mutate", "reload", False)],
    ids=["option", "keyword", "keyword-over-option"],
)
def test_restart_method(tmp_path, backend, option, keyword, mutates, start_service):
    """mutate: SIGHUP keeps the workers and applies the mutable
    ``[myapi] greeting`` in each; reload replaces them."""
    default = f"restart_method = {option}\n" if option else ""
    conf = write_files(tmp_path, default=default, myapi="greeting = before\n")
    api = start_service(
        [*COMMAND, "--config-file", str(conf)],
        name="myapi",
        backend=backend,
        env=environment(MYAPI_RESTART_METHOD=keyword or ""),
        cwd=tmp_path,
    )
    workers = api.children()
    assert len(workers) == 2

    conf.write_text(conf.read_text().replace("before", "after"))
    api.signal(signal.SIGHUP)

    if mutates:
        for pid in workers:  # each worker applied it, and said so
            api.wait_for_output(
                rf"^\S+ \S+ {pid} INFO \S+ \[-\] reload: .*"
                r"\[myapi\] greeting: 'before' -> 'after'"
            )
        answer = get(api)
        assert answer["greeting"] == "after"
        assert answer["pid"] in workers  # the same workers serve
        assert api.children() == workers
    else:
        wait_for(lambda: len(api.children() - workers) == 2, timeout=30)
        wait_for(lambda: get(api)["greeting"] == "after", timeout=30)
    assert api.stop() == 0


@pytest.mark.timeout(90)
def test_serves_on_its_socket_file_only(tmp_path, backend, start_service):
    path = tmp_path / "myapi.sock"
    default = f"myapi_socket_file = {path}\nmyapi_socket_mode = 0660\n"
    conf = write_files(tmp_path, default=default)

    api = start_service(
        [*COMMAND, "--config-file", str(conf)],
        name="myapi",
        backend=backend,
        env=environment(),
        cwd=tmp_path,
        activate=False,  # it binds what its options say
    )

    status, answer = unix_get(path, "/")
    assert status == 200, answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["pid"] in api.children()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    assert re.search(rf"myapi listening on http\+unix://{path}$", api.output(), re.M)
    assert "listening on http://" not in api.output()  # no TCP port
    assert api.stop() == 0


@pytest.mark.timeout(60)
def test_a_bad_socket_mode_is_one_line(tmp_path, backend):
    conf = write_files(tmp_path, default="myapi_socket_mode = rw\n")

    status, out, err = run_to_exit(conf, backend, environment())

    assert status == 1, out + err
    (line,) = err.splitlines()
    assert line.startswith(
        f"{PROG} cannot start: option myapi_socket_mode: 'rw' in {conf} is not valid"
    ), line
