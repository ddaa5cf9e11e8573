"""Perspective API toxicity (the papers' scorer) with rate limiting, retries and honest failures.

The API key is read from `$PERSPECTIVE_API_KEY` only; it is sent as a request parameter and never logged
or written (errors are reported by status code / exception type, not by URL). A request that still fails
after the retries yields NaN and increments `n_failed`; it is never turned into a score of 0.
"""

from __future__ import annotations

import logging
import math
import os
import time

from bench.errors import ConfigError
from bench.metrics.base import Scorer

log = logging.getLogger(__name__)

API_URL = "https://commentanalyzer.googleapis.com/v1alpha1/comments:analyze"
RETRY_STATUS = {429, 500, 502, 503, 504}


class PerspectiveScorer(Scorer):
    """TOXICITY summary score of each text, one request per text, at most `qps` requests per second."""

    name = "perspective"
    version = "v1alpha1/TOXICITY"
    attribute = "toxicity"
    batch_size = 16

    def __init__(
        self,
        qps: float = 1.0,
        max_retries: int = 5,
        backoff_s: float = 2.0,
        timeout_s: float = 30.0,
        session=None,
        sleep=time.sleep,
        clock=time.monotonic,
    ) -> None:
        super().__init__()
        self._key = os.environ.get("PERSPECTIVE_API_KEY")
        if not self._key:
            raise ConfigError("scorer 'perspective': set the environment variable PERSPECTIVE_API_KEY")
        if session is None:
            import requests

            session = requests.Session()
        self.session, self.sleep, self.clock = session, sleep, clock
        self.min_interval = 1.0 / qps if qps > 0 else 0.0
        self.max_retries, self.backoff_s, self.timeout_s = max_retries, backoff_s, timeout_s
        self.n_failed = 0
        self.n_requests = 0
        self._last = -math.inf

    def __repr__(self) -> str:  # never show the key
        return f"PerspectiveScorer(qps={1 / self.min_interval if self.min_interval else 'inf'})"

    def _wait_turn(self) -> None:
        wait = self._last + self.min_interval - self.clock()
        if wait > 0:
            self.sleep(wait)
        self._last = self.clock()

    def _one(self, text: str) -> float:
        body = {
            "comment": {"text": text},
            "languages": ["en"],
            "requestedAttributes": {"TOXICITY": {}},
            "doNotStore": True,
        }
        for attempt in range(self.max_retries + 1):
            self._wait_turn()
            self.n_requests += 1
            try:
                resp = self.session.post(API_URL, params={"key": self._key}, json=body, timeout=self.timeout_s)
            except Exception as exc:  # connection errors: retry; the message may contain the URL, so log the type
                reason = type(exc).__name__
            else:
                if resp.status_code == 200:
                    try:
                        return float(resp.json()["attributeScores"]["TOXICITY"]["summaryScore"]["value"])
                    except (KeyError, TypeError, ValueError):
                        reason = "malformed response"
                        break  # retrying will not change the answer
                reason = f"HTTP {resp.status_code}"
                if resp.status_code not in RETRY_STATUS:
                    break  # e.g. 400 (unsupported language): a retry gets the same answer
            if attempt < self.max_retries:
                self.sleep(self.backoff_s * (2**attempt))
        self.n_failed += 1
        log.warning("perspective: request failed (%s); score is NaN (%d failed so far)", reason, self.n_failed)
        return float("nan")

    def _score(self, texts):
        return [self._one(t) for t in texts]
