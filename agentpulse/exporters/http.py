"""POST batches to ``{endpoint}/v1/ingest``: gzip, keep-alive, retry with backoff.

Connection errors, timeouts, 5xx, 408 and 429 are retried with exponential
backoff and jitter (``tenacity``), honouring ``Retry-After``. Any other 4xx
(and any 3xx: a POST is never redirected) is final and logged once. Every wait
has a bound: ``stop()`` and the reporter's ``deadline`` cut retries, backoff
sleeps and request timeouts short, so a dead or silent collector never holds
up ``shutdown()`` or the exit of the program. A ``Retry-After`` longer than the
longest backoff is honoured without blocking: the batch stays queued and no
request is made before that time.

Our HTTP goes through ``requests``, never httpx/httpx2: tests that mock the
LLM SDKs' transport never see AgentPulse traffic.

Example::

    from agentpulse.exporters.http import HttpExporter
    agentpulse.init(_exporter=HttpExporter("https://collector.example", "ap-key"))
"""

from __future__ import annotations

import email.utils
import gzip
import random
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set

import requests
import tenacity

from .._internal import logger
from .._version import __version__
from .base import EncodedBatch, Exporter, ExportError

__all__ = ["HttpExporter", "parse_retry_after"]

#: Longest backoff sleep between two attempts inside one export.
MAX_BACKOFF = 30.0
#: Longest ``Retry-After`` honoured; a larger value is read as this.
MAX_RETRY_AFTER = 600.0

_FINAL_REQUEST_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
)

# Sessions inherited across fork(): their sockets are the parent's. The child
# never uses nor closes them (closing could disturb the parent's connection)
# and keeps them referenced so they are never finalised here.
_inherited: List[requests.Session] = []


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or ``None``.

    Example::

        parse_retry_after("7")                               # 7.0
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT")   # 0.0 (in the past)
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    try:
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    except (OverflowError, ValueError, OSError):
        return None


class HttpExporter(Exporter):
    """Sends batches to an AgentPulse collector (or anything speaking the ingest contract).

    ``sleep`` replaces the wait between attempts (tests inject one to see the
    requested delays); ``compresslevel`` is the gzip level of bodies.

    Example::

        exp = HttpExporter("http://127.0.0.1:4318", "secret", timeout=5, max_retries=3)
        agentpulse.init(_exporter=exp)
    """

    name = "http"
    wants_models = False

    def __init__(
        self,
        endpoint: str,
        api_key: Optional[str] = None,
        *,
        timeout: float = 10.0,
        max_retries: int = 5,
        backoff_initial: float = 0.5,
        backoff_max: float = MAX_BACKOFF,
        sleep: Optional[Callable[[float], None]] = None,
        compresslevel: int = 3,
    ) -> None:
        self.url = endpoint.rstrip("/") + "/v1/ingest"
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.compresslevel = compresslevel
        #: Attempts repeated after a retryable failure.
        self.retries = 0
        #: Requests the collector accepted.
        self.requests_ok = 0
        self._stop = threading.Event()
        self._custom_sleep = sleep
        self._session: Optional[requests.Session] = None
        self._not_before = 0.0
        self._logged: Set[str] = set()
        self._headers = self._build_headers()

    # -- plumbing ---------------------------------------------------------

    def _build_headers(self) -> Dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": f"agentpulse-python/{__version__}",
        }
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _get_session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def _log_once(self, key: str, msg: str, *args: Any) -> None:
        if key not in self._logged:
            self._logged.add(key)
            logger.warning(msg, *args)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            delay = exc.retry_after
        else:
            base = min(self.backoff_max, self.backoff_initial * (2 ** (state.attempt_number - 1)))
            delay = base * (0.5 + random.random() / 2)
        left = self.time_left()
        return delay if left is None else min(delay, left)

    def _should_stop(self, state: tenacity.RetryCallState) -> bool:
        if self._stop.is_set() or state.attempt_number > self.max_retries:
            return True
        left = self.time_left()
        if left is not None and left <= 0:
            return True
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None and exc.retry_after > self.backoff_max:
            # Too long to sleep on the worker: keep the batch queued and make no request until then.
            self._not_before = time.monotonic() + min(exc.retry_after, MAX_RETRY_AFTER)
            return True
        return False

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        self.retries += 1

    def _sleep(self, seconds: float) -> None:
        if self._custom_sleep is not None:
            self._custom_sleep(seconds)
            self._idle()
            return
        end = time.monotonic() + seconds
        while not self._stop.is_set():
            self._idle()
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            self._stop.wait(min(remaining, 0.25))

    def _idle(self) -> None:
        callback = self.on_idle
        if callback is not None:
            callback()

    # -- Exporter ---------------------------------------------------------

    def export(self, batch: EncodedBatch) -> None:
        """POST ``batch``; raise a retryable ``ExportError`` when the collector cannot take it now."""
        wait = self._not_before - time.monotonic()
        if wait > 0:
            raise ExportError(f"{self.url}: collector asked to wait {wait:.0f}s more (Retry-After)")
        left = self.time_left()
        if left is not None and left <= 0:
            raise ExportError(f"{self.url}: no time left before shutdown")
        body = gzip.compress(batch.body(), compresslevel=self.compresslevel)
        retrying = tenacity.Retrying(
            stop=self._should_stop,
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            retrying(self._post, body)
        except _Retryable as exc:
            raise ExportError(f"{self.url}: {exc}", retryable=True) from None

    def _post(self, body: bytes) -> None:
        timeout = self.timeout
        left = self.time_left()
        if left is not None:
            timeout = max(0.05, min(timeout, left))
        try:
            resp = self._get_session().post(
                self.url,
                data=body,
                headers=self._headers,
                timeout=(min(5.0, timeout), timeout),
                allow_redirects=False,
            )
        except _FINAL_REQUEST_ERRORS as exc:
            self._log_once("request", "agentpulse: cannot send to %s: %s", self.url, exc)
            raise ExportError(f"{self.url}: {exc}", retryable=False) from None
        except requests.RequestException as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        try:
            code = resp.status_code
            if code < 300:
                self.requests_ok += 1
                return
            if code in (408, 429) or code >= 500:
                raise _Retryable(f"HTTP {code}", parse_retry_after(resp.headers.get("Retry-After")))
            detail = resp.text[:300]
        finally:
            resp.close()
        self._log_once(
            f"http.{code}",
            "agentpulse: collector %s refused a batch with HTTP %s: %s",
            self.url,
            code,
            detail,
        )
        raise ExportError(f"HTTP {code}: {detail}", retryable=False)

    def stop(self) -> None:
        """Stop retrying and sleeping: shutdown is near."""
        self._stop.set()

    def after_fork(self) -> None:
        # The parent's keep-alive sockets are not ours to use (nor to close).
        if self._session is not None:
            _inherited.append(self._session)
            self._session = None
        self._stop = threading.Event()

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def describe(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"HttpExporter(url={self.url!r}, retries={self.retries})"
