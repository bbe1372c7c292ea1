"""One thread per engine that interrupts a statement running past its deadline.

A `threading.Timer` per statement started a thread for each of the ~7 statements a segment's
run issues (about a tenth of a run's fixed cost on a small segment); this thread is started
once and sleeps until the earliest deadline of the statements being watched.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Watchdog:
    def __init__(self, on_expiry: Callable[[], None]):
        self._on_expiry = on_expiry
        self._changed = threading.Condition()
        self._due: dict[int, float] = {}  # watch number -> monotonic deadline
        self._numbers = itertools.count()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, seconds: float) -> Iterator[None]:
        """Call `on_expiry` (from the watchdog thread) if the block outlives `seconds`."""
        with self._changed:
            number = next(self._numbers)
            self._due[number] = time.monotonic() + seconds
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="segsql-deadline", daemon=True)
                self._thread.start()
            self._changed.notify()
        try:
            yield
        finally:
            with self._changed:
                self._due.pop(number, None)

    def _loop(self) -> None:
        while True:
            with self._changed:
                if not self._due:
                    self._changed.wait()
                    continue
                number, due = min(self._due.items(), key=lambda item: item[1])
                remaining = due - time.monotonic()
                if remaining > 0:
                    self._changed.wait(remaining)
                    continue
                del self._due[number]
            self._on_expiry()  # outside the lock: interrupting may take a while
