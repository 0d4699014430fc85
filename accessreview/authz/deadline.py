"""How long an authorization request may spend evaluating (``EVALUATION_TIMEOUT``).

Two limits enforce it: oso stops any one query that runs longer (its ``POLAR_TIMEOUT_MS``), and a
request that asks oso many times (a list of resources of a type the compiled table does not cover,
say) checks its :class:`Deadline` before each question. Either way the request fails with
:class:`~accessreview.errors.EvaluationTimeout`, never with a partial or a guessed answer.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Iterator

from polar.exceptions import PolarRuntimeError

from ..errors import EvaluationTimeout

# oso reads this for every query it starts; its own default is 30 s.
_OSO_TIMEOUT_VARIABLE = "POLAR_TIMEOUT_MS"


class Deadline:
    __slots__ = ("seconds", "expires")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.expires:
            raise EvaluationTimeout(self.seconds)


UNBOUNDED = Deadline(float("inf"))  # for work that is not answering a request (reports, launches)


def limit_oso_queries(seconds: float) -> None:
    """Make oso stop any single query after ``seconds`` (for every oso instance in this process)."""
    os.environ[_OSO_TIMEOUT_VARIABLE] = str(max(1, round(seconds * 1000)))


@contextmanager
def oso_query() -> Iterator[None]:
    """Turn oso's "Query timeout" into :class:`EvaluationTimeout`; its other errors pass unchanged."""
    try:
        yield
    except PolarRuntimeError as error:
        if not str(error).startswith("Query timeout"):
            raise
        limit_ms = float(os.environ.get(_OSO_TIMEOUT_VARIABLE, "30000"))
        raise EvaluationTimeout(limit_ms / 1000) from None
