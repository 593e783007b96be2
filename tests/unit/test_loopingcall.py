"""Looping calls, in-process on this process's backend.

On eventlet (the default) they run on the hub, no monkey patching needed;
tests/functional/test_backends.py runs this module again with
WSGISVC_BACKEND=threading.
"""

import logging
import time

import pytest

from tests.helpers import wait_for
from wsgisvc import backend, loopingcall

GUARD = 10  # seconds: a loop that should end but does not fails the test


def ended(done):
    """What the loop ended with; fails when it did not end within GUARD."""
    value = done.wait(GUARD)
    assert done.ready(), f"the loop did not end within {GUARD} s"
    return value


def _counter(limit, retvalue=None, sleep=0.0):
    calls = []

    def f():
        calls.append(time.monotonic())
        if sleep:
            backend.sleep(sleep)
        if len(calls) >= limit:
            raise loopingcall.LoopingCallDone(retvalue)

    return f, calls


def test_fixed_interval_runs_until_done_and_returns_value():
    f, calls = _counter(3, retvalue=42)
    result = ended(loopingcall.FixedIntervalLoopingCall(f).start(0.01))
    assert result == 42
    assert len(calls) == 3


def test_fixed_interval_keeps_start_to_start_rhythm():
    f, calls = _counter(4, sleep=0.02)
    ended(loopingcall.FixedIntervalLoopingCall(f).start(0.1))
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    # The run's own 20 ms is inside the interval, not added to it.
    assert all(0.09 <= gap < 0.115 for gap in gaps), gaps


def test_stop_wakes_a_sleeping_loop_at_once():
    f, calls = _counter(1000)
    loop = loopingcall.FixedIntervalLoopingCall(f)
    done = loop.start(3600)
    wait_for(lambda: calls, GUARD, sleep=backend.sleep)
    loop.stop()
    assert ended(done) is True
    assert len(calls) == 1
    assert not loop.running


def test_stop_during_initial_delay_never_runs():
    f, calls = _counter(1000)
    loop = loopingcall.FixedIntervalLoopingCall(f)
    done = loop.start(0.01, initial_delay=3600)
    backend.sleep(0.05)
    loop.stop()
    ended(done)
    assert calls == []


def test_overrun_is_logged_with_its_duration(caplog):
    f, calls = _counter(2, sleep=0.05)
    with caplog.at_level(logging.WARNING, logger="wsgisvc.loopingcall"):
        ended(loopingcall.FixedIntervalLoopingCall(f).start(0.01))
    overruns = [r.getMessage() for r in caplog.records if "longer than" in r.message]
    assert overruns, caplog.text
    assert "took 0.0" in overruns[0] and "0.01 s interval" in overruns[0]


def test_exception_ends_loop_and_reaches_waiter():
    def boom():
        raise ValueError("bad run")

    with pytest.raises(ValueError, match="bad run"):
        ended(loopingcall.FixedIntervalLoopingCall(boom).start(0.01))


def test_exception_does_not_end_loop_when_asked():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ValueError("transient")
        raise loopingcall.LoopingCallDone("recovered")

    loop = loopingcall.FixedIntervalLoopingCall(flaky)
    assert ended(loop.start(0.01, stop_on_exception=False)) == "recovered"
    assert len(calls) == 3


def test_starting_twice_is_refused():
    loop = loopingcall.FixedIntervalLoopingCall(lambda: None)
    loop.start(3600)
    try:
        with pytest.raises(RuntimeError, match="already running"):
            loop.start(3600)
    finally:
        loop.stop()
        loop.wait(GUARD)


def test_dynamic_sleeps_what_the_function_returns_capped_by_max():
    calls = []

    def f():
        calls.append(time.monotonic())
        if len(calls) >= 3:
            raise loopingcall.LoopingCallDone()
        return 3600  # would stall the test without the cap

    ended(loopingcall.DynamicLoopingCall(f).start(periodic_interval_max=0.02))
    assert len(calls) == 3


def test_dynamic_honours_a_short_suggestion():
    calls = []

    def f():
        calls.append(time.monotonic())
        if len(calls) >= 3:
            raise loopingcall.LoopingCallDone()
        return 0.01

    ended(loopingcall.DynamicLoopingCall(f).start(periodic_interval_max=3600))
    assert calls[-1] - calls[0] < 5


def test_wall_clock_jump_does_not_stall_the_loop(monkeypatch):
    real_time = time.time
    # The wall clock jumps back an hour as soon as the loop is running.
    monkeypatch.setattr(time, "time", lambda: real_time() - 3600)
    f, calls = _counter(5)
    ended(loopingcall.FixedIntervalLoopingCall(f).start(0.01))
    assert len(calls) == 5
