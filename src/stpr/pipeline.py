"""Decode and encode overlapped with enhancement: a reader thread and a writer thread.

FFmpeg (inside PyAV) releases the GIL while it decodes and encodes, and torch releases it while it
computes, so a frame can be decoded and another encoded while the network works on a third.
Both helpers use small bounded queues, so memory stays a few frames deep, and both hand any
exception from their thread back to the caller's thread, where the usual clean-up (dropping a
half-written output) happens. Their threads stop before the caller closes the reader or writer.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
_DONE = object()


class Prefetch(Iterator[T]):
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead.

    Use as a context manager (or call :meth:`close`) so the thread is stopped and joined even when
    the consumer stops early.
    """

    def __init__(self, iterable: Iterable[T], depth: int = 4):
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._finished = False
        self._thread = threading.Thread(target=self._run, args=(iter(iterable),), name="stpr-reader", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, it: Iterator[T]) -> None:
        try:
            for item in it:
                if not self._put(item):
                    return
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer's thread
            self._error = e
        self._put(_DONE)

    def __iter__(self) -> "Prefetch[T]":
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        item = self._q.get()
        if item is _DONE:
            self._finished = True
            self._thread.join()
            if self._error is not None:
                raise self._error
            raise StopIteration
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "Prefetch[T]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BackgroundWriter:
    """Call ``write(item)`` for each :meth:`put` item in a background thread, in order.

    :meth:`close` waits until everything is written and re-raises the first error of the thread;
    :meth:`abort` drops what is still queued. As a context manager it closes on success and
    aborts when the block raises. An error in the thread is also re-raised by the next
    :meth:`put`, so a failing output (full disk) stops the run promptly.
    """

    def __init__(self, write: Callable[[T], None], depth: int = 4):
        self._write = write
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._abort = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stpr-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _DONE or self._abort.is_set():
                return
            if self._error is not None:
                continue  # keep draining so put() never blocks forever
            try:
                self._write(item)
            except BaseException as e:  # noqa: BLE001 - re-raised in the producer's thread
                self._error = e

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        self._check()
        while True:
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                self._check()
                if not self._thread.is_alive():
                    raise RuntimeError("writer thread stopped")

    def close(self) -> None:
        """Write everything queued, stop the thread, raise its error if any."""
        self._q.put(_DONE)
        self._thread.join()
        self._check()

    def abort(self) -> None:
        """Stop without writing what is still queued."""
        self._abort.set()
        while True:  # make room for the sentinel
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._q.put(_DONE)
        self._thread.join()

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
