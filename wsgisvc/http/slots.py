"""The eventlet scheduler's pool: how many requests a worker serves at once,
resizable at run time.

Connections are not counted here, only requests being served: a connection
takes a slot once its request head is whole and gives it back when the
response is sent. A freed slot passes straight to the longest-waiting request
(FIFO), and the accept loop waits a moment for a free slot before it accepts,
so that under load connections spread over the workers sharing a listener
instead of piling up in the first one that woke. Greenthreads are never
preempted, so plain counters need no lock; a waiter parks on an
``eventlet.event.Event``.
"""

import collections

from eventlet import event


class Slots:
    """A resizable counting semaphore for greenthreads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.busy = 0
        self._waiting: collections.deque[event.Event] = collections.deque()
        self._room: event.Event | None = None  # the accept loop, waiting

    def free(self) -> int:
        return self.size - self.busy

    def acquire(self) -> None:
        if self.busy < self.size and not self._waiting:
            self.busy += 1
            return
        handed = event.Event()
        self._waiting.append(handed)
        handed.wait()  # release() or resize() counted the slot as ours

    def release(self) -> None:
        if self._waiting and self.busy <= self.size:
            self._waiting.popleft().send()  # the slot changes hands
            return
        self.busy -= 1
        self._wake_room()

    def resize(self, size: int) -> None:
        """Change the size; waiters run at once when it grew."""
        self.size = size
        while self._waiting and self.busy < self.size:
            self.busy += 1
            self._waiting.popleft().send()
        self._wake_room()

    def wait_room(self, timeout: float) -> bool:
        """Block while every slot is busy, up to ``timeout`` seconds; False
        when still full (the accept loop: a worker with no free slot leaves
        new connections to a sibling for that long)."""
        while self.busy >= self.size:
            self._room = event.Event()
            if not self._room.wait(timeout):
                return self.busy < self.size
        return True

    def _wake_room(self) -> None:
        room, self._room = self._room, None
        if room is not None and self.busy < self.size:
            room.send(True)
        elif room is not None:
            self._room = room
