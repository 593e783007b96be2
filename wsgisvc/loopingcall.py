"""Call a function over and over on a task of its own (a greenthread, or a
thread on the threading backend): at a fixed rate, or at a rate the function
itself chooses.

Why not a bare ``while True: f(); sleep(n)``: the loop must stop promptly when
a service stops (``stop()`` wakes a sleeping loop at once instead of letting
it finish its sleep), keep its rhythm when a run is slow (and say so in the
log, with how long the run took), and measure time on the monotonic clock so
a wall-clock jump neither stalls it nor makes it race.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from wsgisvc import backend

LOG = logging.getLogger(__name__)


class LoopingCallDone(Exception):
    """Raised by the looped function to end the loop; ``wait()`` returns
    ``retvalue``."""

    def __init__(self, retvalue: Any = True):
        super().__init__(retvalue)
        self.retvalue = retvalue


def _describe(func: Callable) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


class Done:
    """How a loop ended, once it has: ``wait()`` for it, from any task."""

    def __init__(self) -> None:
        self._ended = backend.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def _end(self, value: Any = None, error: BaseException | None = None) -> None:
        self._value, self._error = value, error
        self._ended.set()

    def ready(self) -> bool:
        return self._ended.is_set()

    def wait(self, timeout: float | None = None) -> Any:
        """LoopingCallDone's value, or the exception that ended the loop
        re-raised; None when ``timeout`` ran out first."""
        if not self._ended.wait(timeout):
            return None
        if self._error is not None:
            raise self._error
        return self._value


class _LoopingCallBase:
    def __init__(self, f: Callable, *args: Any, **kw: Any):
        self.f = f
        self.args = args
        self.kw = kw
        self._abort = backend.Event()
        self._done: Done | None = None
        self._running = False

    @property
    def running(self) -> bool:
        return self._running and not self._abort.is_set()

    def stop(self) -> None:
        """Ask the loop to end; a loop that is sleeping wakes up at once.

        A run in progress is not interrupted: it finishes, then the loop ends.
        """
        self._abort.set()

    def wait(self, timeout: float | None = None) -> Any:
        """Block (greenly, on eventlet) until the loop ends, or ``timeout``;
        return LoopingCallDone's value or re-raise the exception that ended it."""
        if self._done is None:
            return None
        return self._done.wait(timeout)

    def _start(
        self,
        idle_for: Callable[[Any, float], float],
        initial_delay: float | None,
        stop_on_exception: bool,
    ) -> Done:
        if self._running:
            raise RuntimeError(f"looping call {_describe(self.f)} is already running")
        self._running = True
        self._abort = backend.Event()
        self._done = Done()
        backend.spawn(self._run_loop, idle_for, initial_delay, stop_on_exception)
        return self._done

    def _sleep(self, seconds: float) -> None:
        """Sleep, unless stop() is called first."""
        if seconds > 0:
            self._abort.wait(seconds)
        else:
            backend.sleep(0)  # let others run even when we are behind

    def _run_loop(self, idle_for, initial_delay, stop_on_exception) -> None:
        done = self._done
        try:
            if initial_delay:
                self._sleep(initial_delay)
            while not self._abort.is_set():
                started = time.monotonic()
                try:
                    result = self.f(*self.args, **self.kw)
                except LoopingCallDone as stop:
                    done._end(stop.retvalue)
                    return
                except Exception as error:
                    LOG.exception("Looping call %s failed", _describe(self.f))
                    if stop_on_exception:
                        done._end(error=error)
                        return
                    result = None
                if self._abort.is_set():
                    break
                self._sleep(idle_for(result, time.monotonic() - started))
            done._end(True)
        except Exception as error:
            LOG.exception("Looping call %s stopped", _describe(self.f))
            done._end(error=error)
        finally:
            self._running = False


class FixedIntervalLoopingCall(_LoopingCallBase):
    """Run ``f`` every ``interval`` seconds, start to start."""

    def start(
        self,
        interval: float,
        initial_delay: float | None = None,
        stop_on_exception: bool = True,
    ) -> Done:
        def idle_for(_result: Any, elapsed: float) -> float:
            delay = interval - elapsed
            if delay < 0:
                LOG.warning(
                    "Looping call %s took %.2f s, longer than its %.2f s "
                    "interval; running it again at once",
                    _describe(self.f),
                    elapsed,
                    interval,
                )
            return max(delay, 0.0)

        return self._start(idle_for, initial_delay, stop_on_exception)


class DynamicLoopingCall(_LoopingCallBase):
    """Run ``f``, then sleep as long as ``f`` returned (seconds), capped at
    ``periodic_interval_max``; ``None`` means the cap."""

    def start(
        self,
        initial_delay: float | None = None,
        periodic_interval_max: float | None = None,
        stop_on_exception: bool = True,
    ) -> Done:
        def idle_for(suggested: Any, _elapsed: float) -> float:
            if suggested is None:
                if periodic_interval_max is None:
                    raise RuntimeError(
                        f"{_describe(self.f)} returned no idle time and the loop "
                        "has no periodic_interval_max"
                    )
                return periodic_interval_max
            if periodic_interval_max is not None:
                return min(float(suggested), periodic_interval_max)
            return float(suggested)

        return self._start(idle_for, initial_delay, stop_on_exception)


__all__ = ["Done", "DynamicLoopingCall", "FixedIntervalLoopingCall", "LoopingCallDone"]
