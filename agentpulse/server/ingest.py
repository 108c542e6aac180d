"""``POST /v1/ingest``: read, inflate, validate and store a batch, within fixed memory.

* The body is read chunk by chunk against ``max_body_bytes`` (413) and inflated
  as it arrives, each step asking zlib for no more than the bytes still allowed
  under ``max_decompressed_bytes`` (413): a gzip bomb stops after that many
  bytes of work.
* Every byte held is reserved from one ``MemoryBudget`` (``max_inflight_bytes``);
  when it is spent, or when ``max_queue_events`` events already wait for the
  disk, the answer is 503 with ``Retry-After`` instead of more memory.
* The batch is validated by the wire models of the SDK (``agentpulse.models``);
  a bad one gets a 422 whose ``field`` names the first bad field.
* One writer thread commits what many requests queued in one transaction
  (group commit); each request is answered once its events are on disk. Rows
  are keyed on the event ``id``, so a retried batch is stored once.

Example::

    writer = IngestWriter(storage, max_queue_events=100_000, commit_max_events=20_000)
    writer.start()
    future = writer.submit(rows, loop)      # None when full: answer 503
    stored = await future
    writer.stop()
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import zlib
from typing import Any, AsyncIterator, Deque, Dict, List, Optional, Sequence, Tuple

from pydantic import ValidationError

from .._internal import internal_errors, logger
from ..models import EVENT_KINDS, Batch
from .storage.base import Row, Storage, StorageError, rows_from_batch

__all__ = [
    "BodyReader",
    "Inflater",
    "IngestError",
    "IngestWriter",
    "MemoryBudget",
    "ParsePool",
    "format_validation_error",
    "parse_batch",
]

RETRY_AFTER_SECONDS = 1


class IngestError(Exception):
    """A request the collector refuses: HTTP ``status`` and a JSON body."""

    def __init__(
        self, status: int, error: str, message: str, *, headers: Optional[Dict[str, str]] = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: Dict[str, Any] = {"error": error, "message": message, **extra}
        self.headers = headers or {}

    def as_tuple(self) -> Tuple[int, Dict[str, Any], Dict[str, str]]:
        """What crosses a process boundary (exceptions with keyword arguments do not pickle back)."""
        return self.status, self.body, self.headers

    @classmethod
    def from_tuple(cls, data: Tuple[int, Dict[str, Any], Dict[str, str]]) -> IngestError:
        status, body, headers = data
        extra = {k: v for k, v in body.items() if k not in ("error", "message")}
        return cls(status, str(body.get("error")), str(body.get("message")), headers=headers, **extra)


def overloaded(message: str) -> IngestError:
    """A 503 telling the sender when to come back."""
    return IngestError(503, "overloaded", message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def too_large(message: str) -> IngestError:
    return IngestError(413, "too_large", message)


class MemoryBudget:
    """Bytes of request data the collector may hold at once, shared by every request."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def reserve(self, n: int) -> bool:
        """Take ``n`` bytes if they fit; False (and nothing taken) otherwise."""
        with self._lock:
            if self.used + n > self.limit:
                return False
            self.used += n
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self.used = max(0, self.used - n)


class Inflater:
    """Incremental gzip decoding that never produces more than ``limit`` bytes.

    Example::

        inf = Inflater(limit=1 << 20)
        for chunk in chunks:
            inf.feed(chunk)          # raises IngestError(413) past the limit
        body = inf.finish()
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._parts: List[bytes] = []
        self._d: Any = zlib.decompressobj(wbits=31)
        self._started = False

    def feed(self, data: bytes) -> int:
        """Inflate ``data``; returns how many bytes of output it added."""
        before = self.size
        while data:
            self._started = True
            try:
                out = self._d.decompress(data, self.limit - self.size + 1)
            except zlib.error as exc:
                raise IngestError(400, "bad_encoding", f"body is not valid gzip: {exc}") from None
            self.size += len(out)
            if self.size > self.limit:
                raise too_large(f"decompressed body larger than {self.limit} bytes")
            self._parts.append(out)
            if self._d.eof:
                # A second gzip member may follow (concatenated streams are valid gzip).
                data = self._d.unused_data
                if data:
                    self._d = zlib.decompressobj(wbits=31)
            else:
                data = self._d.unconsumed_tail
        return self.size - before

    def finish(self) -> bytes:
        """The whole inflated body; raises ``IngestError`` (400) when the stream was cut short."""
        if self._started and not self._d.eof:
            raise IngestError(400, "bad_encoding", "gzip body is truncated")
        body = b"".join(self._parts)
        self._parts = []
        return body


class BodyReader:
    """Reads one request body within the size limits, holding its bytes against the shared budget.

    Call ``release()`` once the request is answered (in a ``finally``).

    Example::

        reader = BodyReader(budget, max_body=10 << 20, max_decompressed=64 << 20, gzip=True)
        try:
            body = await reader.read(request.stream())
        finally:
            reader.release()
    """

    def __init__(self, budget: MemoryBudget, *, max_body: int, max_decompressed: int, gzip: bool) -> None:
        self.budget = budget
        self.max_body = max_body
        self.max_decompressed = max_decompressed
        self.inflater = Inflater(max_decompressed) if gzip else None
        self.received = 0
        self.reserved = 0

    def _take(self, n: int) -> None:
        if n <= 0:
            return
        if not self.budget.reserve(n):
            raise overloaded("too much request data in flight; retry shortly")
        self.reserved += n

    async def read(self, chunks: AsyncIterator[bytes]) -> bytes:
        parts: List[bytes] = []
        async for chunk in chunks:
            if not chunk:
                continue
            self.received += len(chunk)
            if self.received > self.max_body:
                raise too_large(f"body larger than {self.max_body} bytes")
            if self.inflater is None:
                if self.received > self.max_decompressed:
                    raise too_large(f"body larger than {self.max_decompressed} bytes")
                self._take(len(chunk))
                parts.append(chunk)
            else:
                # The compressed chunk is dropped once inflated: only the output is held.
                self._take(self.inflater.feed(chunk))
        if self.inflater is not None:
            return self.inflater.finish()
        return b"".join(parts)

    def release(self) -> None:
        self.budget.release(self.reserved)
        self.reserved = 0


# -- validation -------------------------------------------------------------------------


def _field_path(loc: Sequence[Any]) -> str:
    parts: List[str] = []
    items = list(loc)
    for i, item in enumerate(items):
        if isinstance(item, int):
            parts.append(f"[{item}]")
            continue
        # The discriminated union puts the event kind in the path: events.3.llm_call.data -> events[3].data
        if i >= 2 and items[0] == "events" and isinstance(items[i - 1], int) and item in EVENT_KINDS:
            continue
        parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def format_validation_error(exc: ValidationError, *, limit: int = 20) -> IngestError:
    """A 422 naming the first bad field (``events[3].data.input_tokens``) and listing the others."""
    errors: List[Dict[str, Any]] = []
    for err in exc.errors(include_url=False, include_input=False)[:limit]:
        path = _field_path(err.get("loc", ()))
        kind = str(err.get("type", ""))
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            path = f"{path}.kind" if path else "kind"
        errors.append({"field": path or "(body)", "message": str(err.get("msg", "")), "type": kind})
    first = errors[0] if errors else {"field": "(body)", "message": "invalid batch", "type": "invalid"}
    return IngestError(
        422,
        "invalid_batch",
        f"{first['field']}: {first['message']}",
        field=first["field"],
        errors=errors,
        error_count=exc.error_count(),
    )


def parse_batch(body: bytes) -> Tuple[int, List[Row]]:
    """Validate a JSON body with the wire models and build its rows; raises ``IngestError`` (400/422).

    Returns the number of events and their rows.
    """
    try:
        batch = Batch.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)
        if first and first[0].get("type") == "json_invalid":
            raise IngestError(400, "bad_json", f"body is not valid JSON: {first[0].get('msg', '')}") from None
        raise format_validation_error(exc) from None
    return len(batch.events), rows_from_batch(batch)


def _parse_in_worker(body: bytes) -> Tuple[Any, ...]:
    # Runs in a parse worker process: only plain data comes back.
    try:
        n, rows = parse_batch(body)
    except IngestError as exc:
        return ("refused", exc.as_tuple())
    return ("ok", n, rows)


def _warm_worker() -> int:
    # Importing the models is most of a worker's start-up: do it before the first batch arrives.
    from ..models import Batch  # noqa: F401

    return os.getpid()


class ParsePool:
    """Validation on worker processes, so a collector uses every core and not one.

    Validating a batch with the wire models is the collector's heaviest work and
    holds the GIL; bodies of at least ``threshold`` bytes are validated in one of
    ``workers`` processes, which send back the rows ready to store. ``start()``
    spawns them in the background (the collector calls it when it starts; else
    the first ``parse`` does); until they are up, for small bodies, and always
    when ``workers`` is 0, validation happens in-process. A worker that dies is
    replaced; its request is validated in-process instead.

    Example::

        pool = ParsePool(workers=2, threshold=32 * 1024)
        n, rows = await pool.parse(body)
        pool.close()
    """

    def __init__(self, workers: int, threshold: int) -> None:
        self.workers = max(0, workers)
        self.threshold = threshold
        self._pool: Any = None
        self._starter: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._closed = False
        self._big: Optional[asyncio.Semaphore] = None

    @property
    def ready(self) -> bool:
        """True once the worker processes answer."""
        return self._pool is not None

    def start(self) -> None:
        """Start the workers in the background (idempotent; the first ``parse`` calls it)."""
        with self._lock:
            if self.workers == 0 or self._closed or self._pool is not None or self._starter is not None:
                return
            self._starter = threading.Thread(target=self._spawn, name="agentpulse-parse-start", daemon=True)
            self._starter.start()

    def _spawn(self) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: forking a process that runs threads (uvicorn, the writer) is unsafe.
        pool: Any = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            for fut in [pool.submit(_warm_worker) for _ in range(self.workers)]:
                fut.result(120)
        except Exception as exc:
            logger.warning("agentpulse serve: parse workers did not start (%s); validating in-process", exc)
            pool.shutdown(wait=True, cancel_futures=True)
            return
        with self._lock:
            if not self._closed:
                self._pool, pool = pool, None
        if pool is not None:  # closed while starting
            pool.shutdown(wait=True, cancel_futures=True)

    async def parse(self, body: bytes) -> Tuple[int, List[Row]]:
        """Events and rows of ``body``; raises ``IngestError`` (400/422) when it is not a valid batch."""
        from starlette.concurrency import run_in_threadpool

        executor = self._pool
        if executor is None:
            self.start()
        if executor is None or len(body) < self.threshold:
            if len(body) <= _THREAD_PARSE_BYTES:
                return parse_batch(body)
            # A big body becomes several times its size in objects while validated: two at a time.
            if self._big is None:
                self._big = asyncio.Semaphore(2)
            async with self._big:
                return await run_in_threadpool(parse_batch, body)
        from concurrent.futures.process import BrokenProcessPool

        try:
            result = await asyncio.get_running_loop().run_in_executor(executor, _parse_in_worker, body)
        except BrokenProcessPool:
            logger.warning("agentpulse serve: a parse worker died; starting new ones")
            with self._lock:
                if self._pool is executor:
                    self._pool = None
                    self._starter = None
            executor.shutdown(wait=False)
            return await run_in_threadpool(parse_batch, body)
        if result[0] == "refused":
            raise IngestError.from_tuple(result[1])
        return int(result[1]), result[2]

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker processes (waiting for one still starting)."""
        with self._lock:
            self._closed = True
            starter = self._starter
        if starter is not None:
            starter.join(timeout)
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


# Bodies larger than this are validated on a thread when no worker process takes them, so one big
# batch never stalls the event loop.
_THREAD_PARSE_BYTES = 512 * 1024


# -- the writer -------------------------------------------------------------------------


class _Item:
    __slots__ = ("future", "loop", "rows")

    def __init__(self, rows: List[Row], loop: asyncio.AbstractEventLoop, future: asyncio.Future[int]) -> None:
        self.rows = rows
        self.loop = loop
        self.future = future

    def _settle(self, value: Any, error: Optional[BaseException]) -> None:
        fut = self.future
        if fut.done():  # the client went away
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(value)

    def resolve(self, value: int) -> None:
        self._call(value, None)

    def fail(self, error: BaseException) -> None:
        self._call(None, error)

    def _call(self, value: Any, error: Optional[BaseException]) -> None:
        try:
            self.loop.call_soon_threadsafe(self._settle, value, error)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass


class IngestWriter:
    """A bounded queue of validated rows and the one thread that commits them.

    ``submit`` is called on the event loop; it never blocks and returns None
    when ``max_queue_events`` events already wait, which the API turns into a
    503. The thread takes everything waiting (up to ``commit_max_events``) and
    commits it in one transaction, so many small batches cost one fsync.
    """

    def __init__(self, storage: Storage, *, max_queue_events: int, commit_max_events: int) -> None:
        self.storage = storage
        self.max_queue_events = max_queue_events
        self.commit_max_events = commit_max_events
        self.queued_events = 0
        self.counters: Dict[str, int] = collections.Counter()
        self._q: Deque[_Item] = collections.deque()
        self._cv = threading.Condition(threading.Lock())
        self._thread: Optional[threading.Thread] = None
        self._stopping = False

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="agentpulse-ingest-writer", daemon=True)
            self._thread.start()

    def full(self, incoming: int = 0) -> bool:
        """True when ``incoming`` more events would pass the bound (an empty queue takes any batch)."""
        return self.queued_events > 0 and self.queued_events + incoming > self.max_queue_events

    def submit(self, rows: List[Row], loop: asyncio.AbstractEventLoop) -> Optional[asyncio.Future[int]]:
        """Queue ``rows``; the future gives how many were new. None when the queue is full or stopping."""
        fut: asyncio.Future[int] = loop.create_future()
        with self._cv:
            if self._stopping or self.full(len(rows)):
                self.counters["rejected_overload"] += 1
                return None
            self._q.append(_Item(rows, loop, fut))
            self.queued_events += len(rows)
            self._cv.notify()
        return fut

    def stop(self, timeout: float = 10.0) -> bool:
        """Commit what is queued (within ``timeout``) and stop the thread; True when it stopped."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True

    def _take(self) -> Optional[List[_Item]]:
        with self._cv:
            while not self._q:
                if self._stopping:
                    return None
                self._cv.wait(1.0)
            items: List[_Item] = []
            n = 0
            while self._q and (not items or n + len(self._q[0].rows) <= self.commit_max_events):
                item = self._q.popleft()
                items.append(item)
                n += len(item.rows)
            return items

    def _run(self) -> None:
        while True:
            items = self._take()
            if items is None:
                return
            n = sum(len(i.rows) for i in items)
            try:
                stored = self.storage.insert_events([i.rows for i in items])
            except StorageError as exc:
                self.counters["store_errors"] += 1
                logger.warning("agentpulse serve: storing %d events failed: %s", n, exc)
                for item in items:
                    item.fail(exc)
            except Exception as exc:
                internal_errors.note("server.ingest.writer", exc)
                for item in items:
                    item.fail(StorageError(f"{type(exc).__name__}: {exc}", retryable=True))
            else:
                self.counters["commits"] += 1
                self.counters["stored"] += sum(stored)
                self.counters["duplicates"] += n - sum(stored)
                for item, count in zip(items, stored):
                    item.resolve(count)
            finally:
                with self._cv:
                    self.queued_events -= n
