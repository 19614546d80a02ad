"""Worker processes of every ingest stage, robust to a worker killed by the OS.

Items go to a :class:`concurrent.futures.ProcessPoolExecutor` (fork context) in small batches, a few
batches per worker in flight, pulled lazily from the caller's iterable (a stage may generate large
items, e.g. chunks of an ndjson file, without holding them all). When a worker dies (out of memory,
a crash in a codec), the pool breaks: ``multiprocessing.Pool`` would wait forever, the executor
fails every batch in flight with ``BrokenProcessPool``. Each item of those batches is then tried
again alone in a fresh one-worker pool, so one bad item cannot take its batch with it; an item that
kills that worker too is handed to ``on_crash`` (stages quarantine it as ``worker_crashed``). The
remaining batches continue in a new pool.

With ``workers <= 1`` everything runs in the calling process (no isolation, no fork), which is
what tests and small inputs want.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
IN_FLIGHT_PER_WORKER = 4


def _run_batch(work: Callable[[T], R], batch: list[T]) -> list[R]:
    return [work(item) for item in batch]


def _executor(workers: int, init: Callable[..., None], init_args: tuple[Any, ...]) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=init, initargs=init_args
    )


def _isolated(
    item: T,
    work: Callable[[T], R],
    init: Callable[..., None],
    init_args: tuple[Any, ...],
    on_crash: Callable[[T], R],
) -> R:
    """One item in its own worker: its result, or ``on_crash`` when that worker dies too."""
    with _executor(1, init, init_args) as executor:
        try:
            return executor.submit(_run_batch, work, [item]).result()[0]
        except BrokenProcessPool:
            return on_crash(item)


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


def default_batch(items: Iterable[Any], workers: int) -> int:
    """Items per batch: up to 16 small items, about 8 batches per worker (1 when the count is unknown)."""
    if isinstance(items, Sequence):
        return max(1, min(16, len(items) // (max(workers, 1) * 8) or 1))
    return 1


def pool_results(
    items: Iterable[T],
    workers: int,
    work: Callable[[T], R],
    init: Callable[..., None],
    init_args: tuple[Any, ...],
    on_crash: Callable[[T], R],
    *,
    batch: int | None = None,
    ordered: bool = False,
) -> Iterator[R]:
    """Results of ``work`` over ``items`` in ``workers`` processes; never hangs on a crash.

    Args:
        items: the work items (a list, or an iterable consumed lazily).
        workers: worker processes; 1 or fewer runs everything in this process.
        work: the per-item function (module level: it runs in the forked workers).
        init: per-worker initializer, called with ``init_args`` (also in-process when workers <= 1).
        init_args: its arguments (picklable: a :class:`common.crypto.Pseudonymizer` pickles itself).
        on_crash: the result for an item whose worker died even when run alone.
        batch: items per batch sent to a worker (default :func:`default_batch`).
        ordered: yield results in the order of ``items`` (default: as they complete).
    """
    if workers <= 1:
        init(*init_args)
        for item in items:
            yield work(item)
        return
    size = batch or default_batch(items, workers)
    source = enumerate(_batches(items, size))
    retry: deque[tuple[int, list[T]]] = deque()
    ready: dict[int, list[R]] = {}
    next_out = 0
    exhausted = False
    while not exhausted or retry:
        broken: list[tuple[int, list[T]]] = []
        executor = _executor(workers, init, init_args)
        in_flight: dict[Future[list[R]], tuple[int, list[T]]] = {}
        try:
            while True:
                while len(in_flight) < workers * IN_FLIGHT_PER_WORKER:
                    if retry:
                        numbered = retry.popleft()
                    else:
                        numbered = next(source, None)  # type: ignore[arg-type]
                        if numbered is None:
                            exhausted = True
                            break
                    try:
                        in_flight[executor.submit(_run_batch, work, numbered[1])] = numbered
                    except BrokenProcessPool:
                        retry.appendleft(numbered)
                        raise
                if not in_flight:
                    break
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    numbered = in_flight.pop(future)
                    try:
                        ready[numbered[0]] = future.result()
                    except BrokenProcessPool:
                        broken.append(numbered)
                if ordered:
                    while next_out in ready:
                        yield from ready.pop(next_out)
                        next_out += 1
                else:
                    for key in list(ready):
                        yield from ready.pop(key)
        except BrokenProcessPool:
            pass
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        for future, numbered in in_flight.items():  # the pool broke while these were in flight
            if not future.cancelled() and future.exception() is None:
                ready[numbered[0]] = future.result()
            else:
                broken.append(numbered)
        if broken:
            log.warning("a worker died: %d batches are retried one item at a time", len(broken))
        for number, items_of_batch in broken:
            ready[number] = [_isolated(item, work, init, init_args, on_crash) for item in items_of_batch]
        if ordered:
            while next_out in ready:
                yield from ready.pop(next_out)
                next_out += 1
        else:
            for key in list(ready):
                yield from ready.pop(key)
    for key in sorted(ready):  # nothing should be left; never lose a result
        yield from ready.pop(key)
