"""Calling ``startup(server)`` and ``shutdown()``, plain functions or ``async def``.

:func:`call_async` is for an adapter that owns an event loop (ASGI): a
coroutine function is awaited on that loop, a plain function runs in a thread
so it cannot block the loop (and an awaitable it returns is then awaited).
:func:`call_sync` is for one that does not (WSGI): an awaitable result is run to
completion with :func:`asyncio.run`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["call_async", "call_sync"]


async def call_async(hook: Callable[..., Any], *args: object) -> None:
    if inspect.iscoroutinefunction(hook):
        await hook(*args)
        return
    result = await asyncio.to_thread(hook, *args)
    if inspect.isawaitable(result):
        await result


def call_sync(hook: Callable[..., Any], *args: object) -> None:
    result = hook(*args)
    if inspect.isawaitable(result):
        asyncio.run(_wait(result))


async def _wait(awaitable: Awaitable[Any]) -> None:
    await awaitable
