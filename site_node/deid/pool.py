"""Worker processes of ``run_deid``, robust to a worker killed by the OS.

Files go to a :class:`concurrent.futures.ProcessPoolExecutor` (fork context) in small batches, a few
batches per worker in flight. When a worker dies (out of memory, a crash in a codec), the pool breaks:
``multiprocessing.Pool`` would wait forever, the executor fails every batch in flight with
``BrokenProcessPool``. Each file of those batches is then tried again alone in a fresh one-worker
pool, so one bad file cannot take its batch with it; a file that kills that worker too is handed to
``on_crash`` (quarantined as ``worker_crashed`` by the runner). The remaining batches continue in a
new pool.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from site_node.deid.files import FileResult

log = logging.getLogger(__name__)
Item = tuple[Path, str]
Batch = list[Item]
IN_FLIGHT_PER_WORKER = 4


def _run_batch(work: Callable[[Item], FileResult], batch: Batch) -> list[FileResult]:
    return [work(item) for item in batch]


def _executor(workers: int, init: Callable[..., None], init_args: tuple[Any, ...]) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=init, initargs=init_args
    )


def _isolated(
    item: Item,
    work: Callable[[Item], FileResult],
    init: Callable[..., None],
    init_args: tuple[Any, ...],
    on_crash: Callable[[Item], FileResult],
) -> FileResult:
    """One file in its own worker: its result, or ``on_crash`` when that worker dies too."""
    with _executor(1, init, init_args) as executor:
        try:
            return executor.submit(_run_batch, work, [item]).result()[0]
        except BrokenProcessPool:
            return on_crash(item)


def pool_results(
    items: list[Item],
    workers: int,
    work: Callable[[Item], FileResult],
    init: Callable[..., None],
    init_args: tuple[Any, ...],
    on_crash: Callable[[Item], FileResult],
) -> Iterator[FileResult]:
    """Results of ``work`` over ``items`` in ``workers`` processes (unordered); never hangs on a crash.

    Args:
        items: (path, name relative to SRC) of every file.
        workers: worker processes (>= 2; one worker runs in the caller's process instead).
        work: the per-file function (module level: it runs in the forked workers).
        init: per-worker initializer, called with ``init_args``.
        init_args: its arguments.
        on_crash: the result for a file whose worker died even when run alone.
    """
    chunk = max(1, min(16, len(items) // (workers * 8) or 1))
    pending: deque[Batch] = deque(items[i : i + chunk] for i in range(0, len(items), chunk))
    while pending:
        broken: list[Batch] = []
        executor = _executor(workers, init, init_args)
        in_flight: dict[Future[list[FileResult]], Batch] = {}
        try:
            while pending or in_flight:
                while pending and len(in_flight) < workers * IN_FLIGHT_PER_WORKER:
                    batch = pending.popleft()
                    try:
                        in_flight[executor.submit(_run_batch, work, batch)] = batch
                    except BrokenProcessPool:
                        pending.appendleft(batch)
                        raise
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    batch = in_flight.pop(future)
                    try:
                        results = future.result()
                    except BrokenProcessPool:
                        broken.append(batch)
                        continue
                    yield from results
        except BrokenProcessPool:
            pass
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        for future, batch in in_flight.items():  # the pool broke while these were in flight
            if not future.cancelled() and future.exception() is None:
                yield from future.result()
            else:
                broken.append(batch)
        if broken:
            log.warning("a deid worker died: %d batches are retried one file at a time", len(broken))
        for batch in broken:
            for item in batch:
                yield _isolated(item, work, init, init_args, on_crash)
