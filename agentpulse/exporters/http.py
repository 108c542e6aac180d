"""POST batches to ``{endpoint}/v1/ingest``: gzip, keep-alive, retry with backoff.

Connection errors, timeouts, 5xx and 429 are retried with exponential backoff
and jitter (``tenacity``), honouring ``Retry-After``. Any other 4xx is final
and logged once. ``stop()`` cuts retries and backoff sleeps short, so a dead
collector never holds up ``shutdown()``.

Our HTTP goes through ``requests``, never httpx/httpx2: tests that mock the
LLM SDKs' transport never see AgentPulse traffic.
"""

from __future__ import annotations

import email.utils
import gzip
import random
import threading
import time
from typing import Callable, Dict, Optional

import requests
import tenacity

from .._internal import log_once
from .._version import __version__
from .base import EncodedBatch, Exporter, ExportError

__all__ = ["HttpExporter"]

MAX_BACKOFF = 30.0


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class HttpExporter(Exporter):
    """Sends batches to an AgentPulse collector (or anything speaking the ingest contract)."""

    name = "http"

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
    ) -> None:
        self.url = endpoint.rstrip("/") + "/v1/ingest"
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.retries = 0
        self._stop = threading.Event()
        self._custom_sleep = sleep
        self._session: Optional[requests.Session] = None

    # -- plumbing ---------------------------------------------------------

    def _headers(self) -> Dict[str, str]:
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

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.backoff_max)
        base = self.backoff_initial * (2 ** (state.attempt_number - 1))
        return min(self.backoff_max, base) * (0.5 + random.random() / 2)

    def _stopped(self, state: tenacity.RetryCallState) -> bool:
        return self._stop.is_set() or state.attempt_number > self.max_retries

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        self.retries += 1

    # -- Exporter ---------------------------------------------------------

    def export(self, batch: EncodedBatch) -> None:
        body = gzip.compress(batch.body(), compresslevel=6)
        retrying = tenacity.Retrying(
            stop=self._stopped,
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Retryable),
            sleep=self._custom_sleep or self._stop.wait,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            retrying(self._post, body)
        except _Retryable as exc:
            raise ExportError(f"{self.url}: {exc}", retryable=True) from None

    def _post(self, body: bytes) -> None:
        try:
            resp = self._get_session().post(
                self.url, data=body, headers=self._headers(), timeout=(min(5.0, self.timeout), self.timeout)
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        code = resp.status_code
        if code == 429 or code >= 500:
            raise _Retryable(f"HTTP {code}", parse_retry_after(resp.headers.get("Retry-After")))
        if code >= 400:
            detail = resp.text[:300]
            log_once(f"http.{code}", "agentpulse: collector refused a batch with HTTP %s: %s", code, detail)
            raise ExportError(f"HTTP {code}: {detail}", retryable=False)

    def stop(self) -> None:
        """Stop retrying and sleeping: shutdown is near."""
        self._stop.set()

    def after_fork(self) -> None:
        # The parent's keep-alive sockets are not ours to use.
        self._session = None
        self._stop = threading.Event()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def describe(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"HttpExporter(url={self.url!r}, retries={self.retries})"

