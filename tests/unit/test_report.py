"""The SIGUSR2 report, built in this process (the signal path is functional)."""

import gc
import logging
import sys
import threading
import time
import types

import eventlet
import pytest
from oslo_config import cfg

from wsgisvc import config, report


@pytest.fixture
def conf():
    conf = cfg.ConfigOpts()
    config.register_opts(conf)
    conf([], default_config_files=[])
    conf.set_override(
        "connection", "postgresql://u:hunter2@db/x", group="services_table"
    )
    return conf


def _parked_in_a_greenthread(done: eventlet.event.Event) -> None:
    done.wait()


def _parked_in_a_thread(done: threading.Event) -> None:
    done.wait()


def test_every_thread_and_greenthread_stack_and_the_options(conf):
    green_done, thread_done = eventlet.event.Event(), threading.Event()
    green = eventlet.spawn(_parked_in_a_greenthread, green_done)
    thread = threading.Thread(target=_parked_in_a_thread, args=(thread_done,))
    thread.start()
    eventlet.sleep(0)
    try:
        text = report.build(conf)
    finally:
        green_done.send()
        thread_done.set()
        green.wait()
        thread.join()
    for section in ("Threads", "Green Threads", "Processes", "Configuration"):
        assert f"{section: ^64}" in text
    assert "in _parked_in_a_greenthread" in text
    assert "in _parked_in_a_thread" in text
    assert "wsgi_default_pool_size = 100" in text
    assert "hunter2" not in text and "connection = ***" in text


class _Server:
    def describe(self) -> str:
        return "pool 100, 3 busy"


def test_sections_come_and_go_with_their_owner(conf):
    server = _Server()
    report.add_section("osapi server", server.describe)
    heading = f"{'osapi server': ^64}"
    assert heading in report.build(conf)
    del server
    gc.collect()
    assert heading not in report.build(conf)


def test_a_failing_section_says_so_and_the_report_still_comes(conf):
    def broken() -> str:
        raise RuntimeError("pool went away")

    report.add_section("broken", broken)
    try:
        text = report.build(conf)
    finally:
        report._sections.pop("broken")
    assert "this section failed: RuntimeError: pool went away" in text
    assert f"{'Configuration': ^64}" in text


def test_written_as_one_warning_record(conf, caplog):
    caplog.set_level(logging.WARNING, logger="wsgisvc.report")
    report.write(conf)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "wsgisvc report: pid" in record.getMessage()


def test_the_modules_section_while_another_thread_imports():
    """A pool thread may import while a report is built (a SIGUSR2 to a
    threads worker serving): the section must not fail on ``sys.modules``
    changing size under it, which ends the process. Under the GIL a switch
    interval of a microsecond and a switch point in each import let that
    happen too."""

    def importing() -> None:
        for _ in range(5000):
            sys.modules["_wsgisvc_report_probe"] = types.ModuleType("probe")
            time.sleep(0)  # the GIL's switch point: the report runs on
            sys.modules.pop("_wsgisvc_report_probe")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=importing)
    thread.start()
    try:
        while thread.is_alive():
            assert "wsgisvc" in report.loaded_modules()
    finally:
        thread.join()
        sys.setswitchinterval(interval)


def test_a_failing_builtin_section_says_so_and_the_report_still_comes(
    conf, monkeypatch
):
    """Defect: only the sections added with add_section were failsafe; one
    of the report's own that raised (the Modules section racing an import
    did) ended the process that was asked for a report."""

    def broken() -> str:
        raise RuntimeError("dictionary changed size during iteration")

    monkeypatch.setattr(report, "loaded_modules", broken)
    text = report.build(conf)
    assert "this section failed: RuntimeError: dictionary changed size" in text
    assert f"{'Configuration': ^64}" in text


def test_a_report_that_cannot_be_built_is_logged_not_raised(conf, monkeypatch, caplog):
    """What the sections cannot catch (oslo.reports itself failing) is one
    ERROR line with its traceback; the process goes on."""
    from oslo_reports import report as gmr

    def broken(self) -> str:
        raise RuntimeError("template missing")

    monkeypatch.setattr(gmr.TextReport, "run", broken)
    caplog.set_level(logging.WARNING, logger="wsgisvc.report")
    report.write(conf)
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert "could not be built" in record.getMessage()
    assert "template missing" in caplog.text
