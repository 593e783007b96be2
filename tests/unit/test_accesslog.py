"""The access log's writer thread (the threads scheduler): every line, in
order, written by one thread, flushed at the server's stop; a stuck log sink
holds requests back instead of growing the queue."""

from __future__ import annotations

import logging
import threading

import pytest

from tests.helpers import wait_for
from tests.unit._wsgi_inproc import (  # noqa: F401  (scheduler: a fixture)
    get,
    hello_app,
    make_conf,
    running,
    scheduler,
)
from wsgisvc.http import accesslog

FORMAT = "%(client_ip)s %(request_line)s %(status_code)s"


class Recorder(logging.Handler):
    """Keeps each access line with the name of the thread that handled it;
    blocks while ``gate`` is clear."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[str, str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def emit(self, record: logging.LogRecord) -> None:
        self.gate.wait()
        self.lines.append((threading.current_thread().name, record.getMessage()))


@pytest.fixture
def recorder():
    handler = Recorder()
    logger = accesslog.LOGGER
    saved = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        handler.gate.set()
        accesslog.WRITER.flush()
        logger.removeHandler(handler)
        logger.level, logger.propagate = saved


def write(log: accesslog.AccessLog, who: str, n: int) -> None:
    log.write(who, f"GET /{n} HTTP/1.1", "200 OK", 2, 0.0, "")


@pytest.mark.timeout(30)
def test_lines_from_many_threads_are_all_written_in_order_by_one_thread(recorder):
    log = accesslog.AccessLog(FORMAT, off_thread=True)

    def requests(who: str) -> None:
        for n in range(500):
            write(log, who, n)

    threads = [threading.Thread(target=requests, args=(f"c{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accesslog.WRITER.flush()  # what wsgi.Server.wait() does at the stop
    assert {name for name, _ in recorder.lines} == {"access-log"}
    for i in range(4):
        mine = [line for _, line in recorder.lines if line.startswith(f"c{i} ")]
        assert mine == [f"c{i} GET /{n} HTTP/1.1 200" for n in range(500)]


@pytest.mark.timeout(30)
def test_in_the_request_thread_when_not_off_thread(recorder):
    write(accesslog.AccessLog(FORMAT), "c", 1)
    assert recorder.lines == [
        (threading.current_thread().name, "c GET /1 HTTP/1.1 200")
    ]


@pytest.mark.timeout(30)
def test_a_stuck_sink_holds_requests_back_instead_of_queueing_without_bound(
    recorder, monkeypatch
):
    monkeypatch.setattr(accesslog, "WRITER_BACKLOG", 3)
    log = accesslog.AccessLog(FORMAT, off_thread=True)
    recorder.gate.clear()  # the sink blocks, as a full pipe would
    done = threading.Event()

    def requests() -> None:
        for n in range(10):
            write(log, "c", n)
        done.set()

    threading.Thread(target=requests, daemon=True).start()
    # The writer blocks in the sink; a few records queue behind it; then the
    # request thread writes its own line and blocks in the sink too.
    wait_for(lambda: accesslog.WRITER._queue.qsize() >= 2, timeout=10)
    assert not done.wait(0.3)
    assert accesslog.WRITER._queue.qsize() <= 3
    recorder.gate.set()
    assert done.wait(10)
    accesslog.WRITER.flush()
    assert sorted(line for _, line in recorder.lines) == sorted(
        f"c GET /{n} HTTP/1.1 200" for n in range(10)
    )


@pytest.mark.timeout(30)
def test_the_threads_scheduler_writes_through_the_writer(recorder, scheduler):  # noqa: F811
    with running(make_conf(wsgi_log_format=FORMAT), hello_app) as server:
        get(server, "/logged")
    # The server's stop flushed the writer: the line is there, from its thread.
    [(thread, line)] = recorder.lines
    assert line.endswith("GET /logged HTTP/1.1 200")
    assert (thread == "access-log") is (scheduler == "threading")


@pytest.mark.timeout(30)
def test_a_record_that_raises_in_a_filter_neither_ends_the_writer_nor_its_flush(
    recorder, monkeypatch
):
    """A filter that raises (an operator's, say) would have ended the writer
    thread: later lines lost and the next stop's flush waiting forever."""

    def refuse_the_first(record: logging.LogRecord) -> bool:
        if "/0 " in record.getMessage():
            raise RuntimeError("a broken filter")
        return True

    recorder.addFilter(refuse_the_first)
    errors = []
    monkeypatch.setattr(
        accesslog.LOG, "exception", lambda message: errors.append(message)
    )
    log = accesslog.AccessLog(FORMAT, off_thread=True)
    for n in range(3):
        write(log, "c", n)
    accesslog.WRITER.flush()
    assert [line for _, line in recorder.lines] == [
        f"c GET /{n} HTTP/1.1 200" for n in (1, 2)
    ]
    assert errors == ["the access log writer could not write a line"]
