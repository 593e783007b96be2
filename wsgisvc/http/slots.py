"""The pool: how many requests a worker serves at once, resizable at run time.

Connections are not counted here, only requests being served: a connection
takes a slot once its request head is whole and gives it back when the
response is sent. A worker accepts only while a slot is free, so that under
load connections spread over the workers sharing a listener instead of piling
up in the first one that woke. The conditions come from the scheduler (green ones under
eventlet, real ones under threads; both on one lock), so both share this piece.
"""


class Slots:
    """A resizable counting semaphore with a wait for "all free"."""

    def __init__(self, size: int, slot_freed, all_free, room) -> None:
        self.size = size
        self.busy = 0
        self._cond = slot_freed
        self._idle = all_free
        self._room = room

    def free(self) -> int:
        return self.size - self.busy

    def acquire(self) -> None:
        with self._cond:
            while self.busy >= self.size:
                self._cond.wait()
            self.busy += 1

    def release(self) -> None:
        with self._cond:
            self.busy -= 1
            self._cond.notify()
            self._room.notify()
            if not self.busy:
                self._idle.notify_all()

    def resize(self, size: int) -> None:
        """Change the size; waiters run at once when it grew."""
        with self._cond:
            self.size = size
            self._cond.notify_all()
            self._room.notify_all()

    def wait_room(self, timeout: float | None = None) -> bool:
        """Block while every slot is busy (the accept loop: a worker with no
        free slot leaves new connections to a sibling); False on timeout."""
        with self._room:
            return self._room.wait_for(lambda: self.busy < self.size, timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no request is being served; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self.busy == 0, timeout)

    def __enter__(self) -> "Slots":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
