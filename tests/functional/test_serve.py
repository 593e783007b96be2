"""wsgisvc-serve: any WSGI app by module path (or paste), on both backends, as
an operator runs it: its sockets, its workers, where the app is loaded, the
app's own argv and environment, its use of oslo.config's global CONF, reload,
and every way it can fail to start."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import BIN, children, kill_group, spawn, wait_for
from wsgisvc import testing

ROOT = Path(__file__).resolve().parents[2]
SERVE = str(Path(BIN) / "wsgisvc-serve")
APP = "tests.functional._serve_app:application"
LISTENING = re.compile(r"(\S+) listening on http(?:\+unix)?://(\S+)")


class Served:
    """A running wsgisvc-serve: its log, its sockets by name, its workers."""

    def __init__(self, proc: subprocess.Popen, log_path: Path) -> None:
        self.proc, self.pid, self.log_path = proc, proc.pid, log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def sockets(self) -> dict[str, str]:
        return dict(LISTENING.findall(self.log()))

    def workers(self) -> set[int]:
        return set(children(self.pid))

    def get(self, where: str, path: str = "/") -> dict:
        """GET ``path`` at ``HOST:PORT`` or a unix socket path; the JSON."""
        if where.startswith("/"):
            conn = http.client.HTTPConnection("localhost", timeout=10)
            conn.sock = socket.socket(socket.AF_UNIX)
            conn.sock.settimeout(10)
            conn.sock.connect(where)
        else:
            host, _, port = where.rpartition(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            assert response.status == 200, response.read()
            return json.loads(response.read())
        finally:
            conn.close()


@contextlib.contextmanager
def serve(tmp_path: Path, *args: str, backend: str, env: dict | None = None):
    """wsgisvc-serve ``args`` on ``backend``, once every worker answers; its
    process group is killed at the end, whatever happened."""
    log_path = tmp_path / "serve.log"
    proc = spawn(
        [SERVE, *args],
        log_path,
        env={"PYTHONPATH": str(ROOT), "WSGISVC_BACKEND": backend, **(env or {})},
        cwd=tmp_path,
    )
    served = Served(proc, log_path)
    try:
        yield served
    finally:
        kill_group(proc)


def wait_serving(served: Served, sockets: int, workers: int) -> None:
    def ready():
        assert served.proc.poll() is None, served.log()
        return len(served.sockets()) == sockets

    wait_for(ready, timeout=30, what="listening lines")
    if workers > 1:
        wait_for(lambda: len(served.workers()) == workers, timeout=30)
    every_worker_answers(served, next(iter(served.sockets().values())), workers)


def every_worker_answers(served: Served, where: str, workers: int) -> dict:
    """An answer from each worker, by pid. Requests go in bursts: which
    worker accepts a lone connection is the kernel's choice among the
    workers it wakes, and on a loaded machine the last of them may lose that
    race for a long time; a worker takes one connection of a burst per turn
    of its loop (doc/source/wsgi.rst), so a burst reaches them all."""
    answers: dict[int, dict] = {}

    def all_answer():
        with concurrent.futures.ThreadPoolExecutor(3 * workers) as pool:
            for answer in pool.map(lambda _: served.get(where), range(3 * workers)):
                answers[answer["pid"]] = answer
        return len(answers) == workers

    wait_for(all_answer, timeout=30, what="every worker answering")
    return answers


def stop(served: Served) -> int:
    served.proc.send_signal(signal.SIGTERM)
    return served.proc.wait(timeout=30)


@pytest.mark.timeout(90)
def test_a_module_app_on_two_sockets_with_its_argv_and_environment(tmp_path, backend):
    unix = tmp_path / "api.sock"
    args = [
        *("--app", APP, "--bind", "127.0.0.1:0", "--bind", f"unix:{unix}"),
        *("--name", "api", "--workers", "2", "--env", "SERVE_TEST_ENV=from-flag"),
        *("--", "--app-flag", "hi"),
    ]
    with serve(tmp_path, *args, backend=backend) as served:
        wait_serving(served, sockets=2, workers=2)
        sockets = served.sockets()
        assert sockets["api-2"] == str(unix)
        tcp, path = sockets["api"], sockets["api-2"]
        for where in (tcp, path):
            answer = served.get(where)
            assert answer["pid"] in served.workers()
            assert answer["argv"] == ["--app-flag", "hi"]
            assert answer["app_flag"] == "hi"  # the app parsed the global CONF
            assert answer["env"] == "from-flag"
            assert answer["eventlet"] is (backend == "eventlet")
        assert stop(served) == 0


@pytest.mark.timeout(90)
def test_the_backend_flag_picks_the_backend(tmp_path):
    """Exec'd anew on the threads backend, it still serves the socket it was
    passed (``wsgisvc.testing`` passes one, named after the service)."""
    command = [SERVE, "--app", APP, "--workers", "1", "--backend", "threading"]
    env = {"PYTHONPATH": str(ROOT)}
    with testing.serve(
        command, name="tests", backend="eventlet", env=env, cwd=tmp_path
    ) as served:
        with urllib.request.urlopen(served.url, timeout=10) as response:
            assert json.loads(response.read())["eventlet"] is False
        assert "running on native threads" in served.output()
        assert served.stop() == 0


class Peer:
    """A TCP listener the app connects to when it loads (as an app opens a
    database engine): which processes connected, one line each."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.pids: list[int] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.pids.append(int(conn.makefile().readline()))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("preload", [False, True], ids=["in-workers", "preload"])
def test_where_the_app_is_loaded(tmp_path, backend, preload):
    """By default each worker loads the app after the fork: its own thread
    runs, its own connection is open. --preload loads it once, in the parent:
    the workers share the parent's one connection, its thread is not theirs."""
    peer = Peer()
    args = ["--app", APP, "--bind", "127.0.0.1:0", "--workers", "3"]
    args += ["--preload"] if preload else []
    env = {"SERVE_TEST_PEER": peer.address}
    with serve(tmp_path, *args, backend=backend, env=env) as served:
        wait_serving(served, sockets=1, workers=3)
        where = next(iter(served.sockets().values()))
        workers = served.workers()
        answers = every_worker_answers(served, where, 3)
        if preload:
            assert peer.pids == [served.pid]
            assert all(a["loaded_in"] == served.pid for a in answers.values())
        else:
            wait_for(lambda: sorted(peer.pids) == sorted(workers))
            assert all(a["loaded_in"] == pid for pid, a in answers.items())
            assert all(a["thread_alive"] for a in answers.values())
        assert stop(served) == 0


@pytest.mark.timeout(90)
@pytest.mark.parametrize("preload", [False, True], ids=["in-workers", "preload"])
def test_the_apps_exit_handlers_run_where_it_was_loaded(tmp_path, backend, preload):
    """What the app registers with atexit runs at the exit of the process
    that loaded it, each worker's or the parent's, once: never the parent's
    handlers in a worker, nor a worker's lost to os._exit."""
    markers = tmp_path / "atexit"
    markers.mkdir()
    args = ["--app", APP, "--bind", "127.0.0.1:0", "--workers", "2"]
    args += ["--preload"] if preload else []
    env = {"SERVE_TEST_ATEXIT_DIR": str(markers)}
    with serve(tmp_path, *args, backend=backend, env=env) as served:
        wait_serving(served, sockets=1, workers=2)
        workers = served.workers()
        assert stop(served) == 0
    ran = {int(name) for name in os.listdir(markers)}
    assert ran == ({served.pid} if preload else workers)


@pytest.mark.timeout(120)
def test_reload_loads_the_app_again_in_each_new_worker(tmp_path, backend):
    peer = Peer()
    args = ["--app", APP, "--bind", "127.0.0.1:0", "--workers", "2"]
    args += ["--", "--app-flag", "kept"]
    env = {"SERVE_TEST_PEER": peer.address}
    with serve(tmp_path, *args, backend=backend, env=env) as served:
        wait_serving(served, sockets=1, workers=2)
        where = next(iter(served.sockets().values()))
        old = served.workers()
        served.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in served.log(), timeout=30)
        new = served.workers()
        assert len(new) == 2 and not new & old
        wait_for(lambda: sorted(peer.pids) == sorted(old | new), timeout=30)
        answer = served.get(where)
        assert answer["pid"] in new and answer["loaded_in"] == answer["pid"]
        assert answer["app_flag"] == "kept"
        assert stop(served) == 0


def run_serve(tmp_path, *args: str, backend: str, env: dict | None = None):
    """wsgisvc-serve to its end: (status, stdout, stderr)."""
    proc = subprocess.run(
        [SERVE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        start_new_session=True,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "WSGISVC_BACKEND": backend,
            **(env or {}),
        },
    )
    return proc.returncode, proc.stdout, proc.stderr


CANNOT_START = [
    (["--workers", "0", "--app", APP], {}, "argument --workers: '0' is not a number"),
    (["--app", APP, "--bind", "localhost"], {}, "argument --bind: 'localhost'"),
    (["--app", "no_such_module:app"], {}, "no module named 'no_such_module'"),
    (["--app", "tests.functional._serve_app"], {}, "give it as module:callable"),
    (
        ["--app", "tests.functional._serve_app:nothing", "--workers", "2"],
        {},
        "module 'tests.functional._serve_app' has no 'nothing'",
    ),
    (
        ["--app", APP, "--workers", "2"],
        {"SERVE_TEST_FAIL": "no database"},
        "RuntimeError: no database",
    ),
    (
        ["--app", APP, "--workers", "2", "--preload"],
        {"SERVE_TEST_FAIL": "no database"},
        "RuntimeError: no database",
    ),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "args,env,why",
    CANNOT_START,
    ids=[
        "bad-flag",
        "bad-bind",
        "no-module",
        "no-callable-given",
        "no-callable-in-workers",
        "import-fails-in-workers",
        "import-fails-preloaded",
    ],
)
def test_what_cannot_start_is_one_line_and_exit_1(tmp_path, backend, args, env, why):
    status, out, err = run_serve(
        tmp_path, *args, "--bind", "127.0.0.1:0", backend=backend, env=env
    )
    assert status == 1, out + err
    assert err.count("\n") == 1 and err.startswith("wsgisvc-serve cannot start: ")
    assert why in err
    # no respawn storm: each worker slot tried once
    assert len(re.findall(r"started worker \d+", out)) <= 2, out


@pytest.mark.timeout(120)
def test_an_app_owning_the_global_conf_leaves_the_binarys_alone(tmp_path, backend):
    """The README's binary (wsgisvc-api) serving an app that, as glance and
    keystone do when they load, registers a command-line option on oslo.config's
    global CONF and parses it with its own file: the app starts, and
    wsgisvc-api's own options (the access line format) still hold."""
    paste = tmp_path / "paste.ini"
    paste.write_text(
        "[app:osapi]\npaste.app_factory = tests.functional._serve_app:factory\n"
    )
    app_conf = tmp_path / "app.conf"
    app_conf.write_text("[DEFAULT]\ngreeting = from-the-app-file\n")
    conf = tmp_path / "wsgisvc.conf"
    conf.write_text(
        "[DEFAULT]\nosapi_listen = 127.0.0.1\nosapi_listen_port = 0\n"
        f"osapi_workers = 2\napi_paste_config = {paste}\nstate_path = {tmp_path}\n"
        "wsgi_log_format = OWN-FORMAT %(status_code)s\n"
    )
    log_path = tmp_path / "api.log"
    proc = spawn(
        [str(Path(BIN) / "wsgisvc-api"), "--config-file", str(conf)],
        log_path,
        env={
            "PYTHONPATH": str(ROOT),
            "WSGISVC_BACKEND": backend,
            "SERVE_TEST_APP_CONF": str(app_conf),
        },
        cwd=tmp_path,
    )
    served = Served(proc, log_path)
    try:
        wait_serving(served, sockets=1, workers=2)
        answer = served.get(served.sockets()["osapi"])
        assert answer["greeting"] == "from-the-app-file"
        wait_for(lambda: "OWN-FORMAT 200" in served.log())
        assert stop(served) == 0
    finally:
        kill_group(proc)


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


@pytest.mark.timeout(120)
def test_an_upgrade_keeps_every_socket_and_the_apps_argv(tmp_path, backend):
    """SIGUSR1: the command is exec'd anew on the sockets it serves (handed
    over by name, the second one named NAME-2), with the app's arguments; the
    old parent exits 0 and the new generation answers on both sockets."""
    unix = tmp_path / "api.sock"
    args = [
        *("--app", APP, "--bind", "127.0.0.1:0", "--bind", f"unix:{unix}"),
        *("--name", "api", "--workers", "2", "--", "--app-flag", "kept"),
    ]
    with serve(tmp_path, *args, backend=backend) as served:
        wait_serving(served, sockets=2, workers=2)
        tcp = served.sockets()["api"]
        old_workers = served.workers()
        served.proc.send_signal(signal.SIGUSR1)
        assert served.proc.wait(timeout=60) == 0, served.log()
        for where in (tcp, str(unix)):
            answer = served.get(where)
            assert answer["pid"] not in old_workers
            assert parent_of(answer["pid"]) != served.pid
            assert (
                answer["app_flag"] == "kept" and answer["loaded_in"] == (answer["pid"])
            )
        new_parent = parent_of(served.get(tcp)["pid"])
        os.kill(new_parent, signal.SIGTERM)
        wait_for(lambda: not os.path.exists(f"/proc/{new_parent}"), timeout=30)
