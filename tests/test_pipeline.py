"""Reader/writer threads: order, early stop, errors handed back to the caller's thread."""

from __future__ import annotations

import threading
import time

import pytest

from stpr.pipeline import BackgroundWriter, Prefetch


def test_prefetch_keeps_order_and_ends():
    with Prefetch(range(100), depth=3) as it:
        assert list(it) == list(range(100))


def test_prefetch_reraises_in_consumer():
    def gen():
        yield 1
        yield 2
        raise ValueError("bad frame 3")

    got = []
    with pytest.raises(ValueError, match="bad frame 3"):
        with Prefetch(gen(), depth=1) as it:
            for x in it:
                got.append(x)
    assert got == [1, 2]


def test_prefetch_close_stops_the_thread_early():
    produced = []

    def gen():
        for i in range(10_000):
            produced.append(i)
            yield i

    it = Prefetch(gen(), depth=2)
    assert next(it) == 0
    it.close()
    assert not it._thread.is_alive()
    assert len(produced) < 10  # bounded look-ahead, no run to the end


def test_writer_writes_everything_in_order():
    out = []

    def slow_write(x):
        time.sleep(0.001)
        out.append(x)

    w = BackgroundWriter(slow_write, depth=2)
    for i in range(50):
        w.put(i)
    w.close()
    assert out == list(range(50))


def test_writer_error_reaches_put_or_close():
    def write(x):
        if x == 3:
            raise OSError("disk full")

    w = BackgroundWriter(write, depth=1)
    with pytest.raises(OSError, match="disk full"):
        for i in range(1000):
            w.put(i)
        w.close()
    w.abort()
    assert not w._thread.is_alive()


def test_writer_abort_drops_the_queue():
    gate = threading.Event()
    out = []

    def write(x):
        gate.wait()
        out.append(x)

    w = BackgroundWriter(write, depth=4)
    for i in range(4):
        w.put(i)
    gate.set()
    w.abort()
    assert not w._thread.is_alive()
    assert len(out) <= 2  # at most the item in hand (and one racing the abort) is written


def test_writer_context_closes_on_success_and_aborts_on_error():
    out = []
    with BackgroundWriter(out.append) as w:
        for i in range(5):
            w.put(i)
    assert out == list(range(5)) and not w._thread.is_alive()
    with pytest.raises(KeyError):
        with BackgroundWriter(lambda x: None) as w2:
            raise KeyError("boom")
    assert not w2._thread.is_alive()
