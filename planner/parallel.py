"""Header reads in a thread pool, shared by the resolver and the Ollama registry reader."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

H = TypeVar("H")  # what a header task returns: a header, or None for an offline miss


def run_parallel(tasks: list[Callable[[], H]], workers: int) -> list[H]:
    """Run header loads in a thread pool; the first failure cancels the rest and is raised."""
    if len(tasks) <= 1 or workers <= 1:
        return [t() for t in tasks]  # one file (a local estimate, cached headers): no pool, no import
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    pool = ThreadPoolExecutor(max_workers=min(workers, len(tasks)), thread_name_prefix="memfit-hdr")
    try:
        futures: list[Future[H]] = [pool.submit(t) for t in tasks]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        _raise_first_failure(futures, pending)
        return [f.result() for f in futures]
    except BaseException:
        # Ctrl-C (or a failed read): do not sit waiting for the reads still in flight
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=False)


def _raise_first_failure(futures: list[Future[H]], pending: set[Future[H]]) -> None:
    exc = next((f.exception() for f in futures if f.done() and not f.cancelled() and f.exception() is not None), None)
    if exc is None:
        return
    for f in pending:
        f.cancel()
    raise exc
