"""Rate limits (the ``limits`` library, moving window, in memory) as FastAPI dependencies.

The limiter lives in ``app.state.rate_limiter``; a 429 carries ``Retry-After``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, status
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request


class RateLimiter:
    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._parsed: dict[str, RateLimitItem] = {}

    def _item(self, rate: str) -> RateLimitItem:
        if rate not in self._parsed:
            self._parsed[rate] = parse(rate)
        return self._parsed[rate]

    def hit(self, rate: str, *keys: str) -> float | None:
        """Count one hit; ``None`` if allowed, else seconds until the next is allowed."""
        item = self._item(rate)
        if self._limiter.hit(item, *keys):
            return None
        reset = self._limiter.get_window_stats(item, *keys).reset_time
        return max(1.0, reset - time.time())

    def reset(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())


def limiter_of(request: Request) -> RateLimiter:
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        limiter = request.app.state.rate_limiter = RateLimiter()
    return limiter


def too_many(retry_after: float) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        "请求过于频繁，请稍后再试 / too many requests, try again later",
        headers={"Retry-After": str(math.ceil(retry_after))},
    )


def rate_limited(
    bucket: str, rate: Callable[[Request], str], key: Callable[[Request], str]
) -> Callable[[Request], Awaitable[None]]:
    """Dependency: ``Depends(rate_limited("alarm", rate_of, key_of))``."""

    async def check(request: Request) -> None:
        wait = limiter_of(request).hit(rate(request), bucket, key(request))
        if wait is not None:
            raise too_many(wait)

    return check
