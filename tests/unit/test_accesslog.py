"""The access log: records made by the ``wsgisvc.access`` logger (its record
factory, its filters in the request's thread), the request's oslo.context
context on them, the old logger name still served; on the threads scheduler,
the queue and its writer thread: every line, in order, written by one thread,
flushed at the server's stop; a stuck log sink holds requests back instead of
growing the queue."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from oslo_context import context as oslo_context

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
    """Keeps each access record, the line and the name of the thread that
    handled it; blocks while ``gate`` is clear."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.lines: list[tuple[str, str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def emit(self, record: logging.LogRecord) -> None:
        self.gate.wait()
        self.records.append(record)
        self.lines.append((threading.current_thread().name, record.getMessage()))


@pytest.fixture
def recorder():
    """The access logger's handlers replaced by a Recorder, at INFO."""
    handler = Recorder()
    logger = accesslog.LOGGER
    saved = logger.level, logger.handlers
    logger.setLevel(logging.INFO)
    logger.handlers = [handler]
    try:
        yield handler
    finally:
        handler.gate.set()
        accesslog.WRITER.flush()
        logger.level, logger.handlers = saved


def write(log: accesslog.AccessLog, who: str, n: int, context=None) -> None:
    log.write(who, f"GET /{n} HTTP/1.1", "200 OK", 2, 0.0, "", context)


@pytest.mark.timeout(30)
def test_lines_from_many_threads_are_all_written_in_order_by_one_thread(recorder):
    writer = accesslog.Writer()
    log = accesslog.AccessLog(FORMAT, writer)

    def requests(who: str) -> None:
        for n in range(500):
            write(log, who, n)

    threads = [threading.Thread(target=requests, args=(f"c{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writer.flush(10)  # what wsgi.Server.wait() does at the stop
    [(writer_thread)] = {name for name, _ in recorder.lines}
    assert writer_thread not in {thread.name for thread in threads}
    for i in range(4):
        mine = [line for _, line in recorder.lines if line.startswith(f"c{i} ")]
        assert mine == [f"c{i} GET /{n} HTTP/1.1 200" for n in range(500)]


@pytest.mark.timeout(30)
def test_the_writer_wakes_for_a_batch_of_lines_and_at_once_for_a_flush(
    recorder, monkeypatch
):
    """The first line after the queue ran empty wakes the writer, which
    waits for the batch behind it: the line is written once the batch is in
    (here before the much longer linger ends); a flush ends the wait at
    once."""
    monkeypatch.setattr(accesslog, "WRITER_LINGER", 20.0)
    monkeypatch.setattr(accesslog, "WRITER_BATCH", 3)
    writer = accesslog.Writer()
    log = accesslog.AccessLog(FORMAT, writer)
    write(log, "c", 0)
    assert writer.flush(5)  # the writer started, and wrote all
    queue = writer._handler.queue
    wait_for(lambda: queue._reader_waits, timeout=5, what="the writer asleep")
    write(log, "c", 1)
    write(log, "c", 2)
    time.sleep(0.3)
    assert len(recorder.lines) == 1  # lingering for the batch
    write(log, "c", 3)  # the batch is in
    wait_for(lambda: len(recorder.lines) == 4, timeout=5, what="the batch written")
    wait_for(lambda: queue._reader_waits, timeout=5, what="the writer asleep")
    write(log, "c", 4)
    assert writer.flush(5)  # not the 20 s linger
    assert [line for _, line in recorder.lines] == [
        f"c GET /{n} HTTP/1.1 200" for n in range(5)
    ]


@pytest.mark.timeout(30)
def test_in_the_request_thread_without_a_writer(recorder):
    write(accesslog.AccessLog(FORMAT), "c", 1)
    assert recorder.lines == [
        (threading.current_thread().name, "c GET /1 HTTP/1.1 200")
    ]


@pytest.mark.timeout(30)
def test_a_stuck_sink_holds_requests_back_instead_of_queueing_without_bound(
    recorder,
):
    writer = accesslog.Writer(backlog=3)
    log = accesslog.AccessLog(FORMAT, writer)
    recorder.gate.clear()  # the sink blocks, as a full pipe would
    done = threading.Event()

    def requests() -> None:
        for n in range(10):
            write(log, "c", n)
        done.set()

    threading.Thread(target=requests, daemon=True).start()
    # The writer blocks in the sink with one record, three queue behind it,
    # and the request waits for room.
    wait_for(lambda: writer._handler and writer._handler.queue.full(), timeout=10)
    assert not done.wait(0.3)
    assert writer._handler.queue.qsize() == 3
    assert not writer.flush(0.1)  # bounded: an exit does not hang on it
    recorder.gate.set()
    assert done.wait(10)
    assert writer.flush(10)
    assert [line for _, line in recorder.lines] == [
        f"c GET /{n} HTTP/1.1 200" for n in range(10)
    ]


@pytest.mark.timeout(30)
def test_the_threads_scheduler_writes_through_the_writer(recorder, scheduler):  # noqa: F811
    with running(make_conf(wsgi_log_format=FORMAT), hello_app) as server:
        get(server, "/logged")
    # The server's stop flushed the writer: the line is there.
    [(thread, line)] = recorder.lines
    assert line.endswith("GET /logged HTTP/1.1 200")
    write(accesslog.AccessLog(FORMAT, accesslog.WRITER), "c", 1)
    accesslog.WRITER.flush()
    writer_thread = recorder.lines[-1][0]
    assert (thread == writer_thread) is (scheduler == "threading")


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
    writer = accesslog.Writer()
    log = accesslog.AccessLog(FORMAT, writer)
    for n in range(3):
        write(log, "c", n)
    assert writer.flush(10)
    assert [line for _, line in recorder.lines] == [
        f"c GET /{n} HTTP/1.1 200" for n in (1, 2)
    ]
    assert errors == ["the access log writer could not write a line"]


class Marked(logging.LogRecord):
    """What a record factory an operator set makes."""


@pytest.mark.timeout(30)
@pytest.mark.parametrize("queued", [False, True])
def test_records_come_from_the_record_factory_and_the_logger_filters(recorder, queued):
    """Records were built by hand from a template, past the record factory;
    logger filters must run in the request's thread, where its state is."""
    saved = logging.getLogRecordFactory()
    logging.setLogRecordFactory(Marked)
    seen_in = []

    def tag(record: logging.LogRecord) -> bool:
        seen_in.append(threading.current_thread().name)
        record.tagged = True
        return "/drop " not in record.getMessage()

    accesslog.LOGGER.addFilter(tag)
    writer = accesslog.Writer() if queued else None
    try:
        log = accesslog.AccessLog(FORMAT, writer)
        write(log, "c", 1)
        log.write("c", "GET /drop HTTP/1.1", "200 OK", 2, 0.0, "")
        if writer is not None:
            assert writer.flush(10)
    finally:
        accesslog.LOGGER.removeFilter(tag)
        logging.setLogRecordFactory(saved)
    [record] = recorder.records
    assert isinstance(record, Marked) and record.tagged
    assert record.name == "wsgisvc.access"
    assert record.getMessage() == "c GET /1 HTTP/1.1 200"
    assert seen_in == [threading.current_thread().name] * 2


@pytest.fixture
def no_context():
    """This thread's oslo.context store left as the test found it (empty)."""
    try:
        yield
    finally:
        oslo_context._request_store.context = None


def test_a_context_left_by_an_earlier_request_is_not_the_requests(no_context):
    """oslo.context never clears the thread's current context."""
    oslo_context.RequestContext(request_id="req-earlier")
    before = accesslog.current_context()  # a request begins
    made = oslo_context.RequestContext(request_id="req-made")
    assert accesslog.context_made_since(before) is made
    before = accesslog.current_context()  # the next one makes none
    assert accesslog.context_made_since(before) is None


@pytest.mark.timeout(30)
@pytest.mark.parametrize("queued", [False, True])
def test_the_record_carries_the_requests_context_and_none_otherwise(
    recorder, queued, no_context
):
    """oslo.log formats the context a record carries, else the current one of
    the thread that formats it: the writer thread's (none), or, in the
    request's thread, one an earlier request left."""
    writer = accesslog.Writer() if queued else None
    log = accesslog.AccessLog(FORMAT, writer)
    made = oslo_context.RequestContext(request_id="req-made", user_id="u1")
    write(log, "c", 1, made)
    write(log, "c", 2)  # made none; ``made`` is still current in the thread
    if writer is not None:
        assert writer.flush(10)
    assert [r.__dict__["context"] for r in recorder.records] == [made, None]


@pytest.fixture
def levels():
    """The levels of the access logger and of the old name, restored after."""
    loggers = [logging.getLogger(n) for n in ("wsgisvc.access", "eventlet.wsgi.server")]
    saved = [logger.level for logger in loggers]
    try:
        yield loggers
    finally:
        for logger, level in zip(loggers, saved, strict=True):
            logger.setLevel(level)


@pytest.mark.timeout(30)
def test_the_line_is_on_wsgisvc_access_and_the_old_name_can_turn_it_off(levels, caplog):
    """Operators turn the line off with ``eventlet.wsgi.server=WARN`` in
    default_log_levels: that goes on working with the new name."""
    new, old = levels
    caplog.set_level(logging.INFO, logger="wsgisvc.access")
    log = accesslog.AccessLog(FORMAT)
    write(log, "c", 1)
    old.setLevel(logging.WARNING)
    write(log, "c", 2)
    old.setLevel(logging.INFO)  # on the old name alone: the root's level decides
    new.setLevel(logging.NOTSET)
    write(log, "c", 3)
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("wsgisvc.access", "c GET /1 HTTP/1.1 200")
    ]
