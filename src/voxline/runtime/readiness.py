"""Whether this node should get new calls: what ``/readyz`` and SIP ``OPTIONS`` answer.

One :class:`Readiness` per runtime. The node is ready unless one of these holds (all are reported,
the first is *the* reason):

- it is draining (SIGTERM: ``Runtime.shutdown``), for good;
- it is at ``max_calls`` (calls holding a slot; a session whose call ended does not), until a call ends;
- the Realtime endpoint failed the last ``model_failures`` connects in a row (a success resets the
  count; 0 turns the check off). So that a node taken out of rotation for it comes back by itself
  (no calls, so no connects, would keep it out forever), it reports ready again ``model_retry_s``
  after the last failure: the next call tries the model, and one more failure takes the node out
  again for another ``model_retry_s``, a success puts it back for good (a circuit breaker's
  half-open state).

Readiness is advice to balancers and SIP proxies: a call that arrives anyway is still admitted when
there is a slot (the runtime refuses only draining and over the limit), so the probe call of the
half-open state is an ordinary call.

The Realtime client reports its connects through :meth:`voxline.context.SessionContext.model_connect`
(``voxline.openai`` does not import the runtime); the runtime's sessions forward them here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from ..logs import redact

__all__ = ["RETRY_AFTER_S", "Readiness"]

RETRY_AFTER_S = 5
"""``Retry-After`` (seconds) while draining or full: what the SIP core says to a refused INVITE."""

_ERROR_CHARS = 200  # of the last connect error kept in a reason: a reason is one line a human reads


class Readiness:
    """Ready unless draining, full, or the model's connects keep failing (see the module docstring).

    ``active_calls`` counts the calls holding a slot now; ``clock`` gives seconds on any monotonic
    origin (tests pass their own).
    """

    def __init__(
        self,
        *,
        max_calls: int,
        active_calls: Callable[[], int],
        model_failures: int = 3,
        model_retry_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(max_calls, bool) or not isinstance(max_calls, int) or max_calls < 1:
            raise ValueError(f"max_calls must be an integer >= 1, not {max_calls!r}")
        if isinstance(model_failures, bool) or not isinstance(model_failures, int) or model_failures < 0:
            raise ValueError(f"model_failures must be an integer >= 0 (0: off), not {model_failures!r}")
        if not model_retry_s > 0 or math.isinf(model_retry_s):
            raise ValueError(f"model_retry_s must be a finite number of seconds > 0, not {model_retry_s!r}")
        self.max_calls = max_calls
        self.model_failures = model_failures
        self.model_retry_s = float(model_retry_s)
        self._active_calls = active_calls
        self._clock = clock
        self._draining = False
        self._failures = 0  # consecutive failed connects
        self._last_error = ""
        self._failed_at: float | None = None

    # -- what happens --------------------------------------------------------------------------------

    def start_draining(self) -> None:
        """Not ready from now on (there is no way back: a draining runtime stops)."""
        self._draining = True

    def model_connect(self, error: str | None) -> None:
        """A Realtime connect ended: ``error`` None when it connected, else why it did not."""
        if error is None:
            self._failures = 0
            self._last_error = ""
            self._failed_at = None
            return
        self._failures += 1
        # A server's message may quote what it was sent: masked, and kept to one short line.
        text = " ".join(redact(str(error)).split())
        self._last_error = text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 3] + "..."
        self._failed_at = self._clock()

    # -- what it says ---------------------------------------------------------------------------------

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def consecutive_failures(self) -> int:
        """Realtime connects failed in a row (0 after a success)."""
        return self._failures

    def _model_out_for(self) -> float | None:
        """Seconds the model condition keeps the node out, or None when it does not."""
        if not self.model_failures or self._failures < self.model_failures or self._failed_at is None:
            return None
        left = self._failed_at + self.model_retry_s - self._clock()
        return left if left > 0 else None

    def reasons(self) -> list[str]:
        """Why the node is not ready, most lasting first; empty when it is ready."""
        found: list[str] = []
        if self._draining:
            found.append("draining")
        if self._active_calls() >= self.max_calls:
            found.append(f"at max_calls ({self.max_calls})")
        if self._model_out_for() is not None:
            found.append(f"model connects failing ({self._failures} in a row: {self._last_error})")
        return found

    def reason(self) -> str | None:
        """The first reason the node is not ready, or None when it is (the SIP core's hook)."""
        found = self.reasons()
        return found[0] if found else None

    @property
    def ready(self) -> bool:
        return not self.reasons()

    def retry_after(self) -> int:
        """Seconds for ``Retry-After`` when not ready: the model's back-off when that alone keeps the
        node out, else :data:`RETRY_AFTER_S`."""
        left = self._model_out_for()
        if left is not None and not self._draining and self._active_calls() < self.max_calls:
            return max(1, math.ceil(left))
        return RETRY_AFTER_S

    def status(self) -> dict[str, Any]:
        """The JSON body of ``/readyz`` and ``/health``."""
        found = self.reasons()
        return {
            "status": "not ready" if found else "ready",
            "ready": not found,
            "reason": found[0] if found else None,
            "reasons": found,
            "draining": self._draining,
            "calls": self._active_calls(),
            "max_calls": self.max_calls,
            "model_connect_failures": self._failures,
        }
