"""Calling ``startup(server)`` and ``shutdown()``, plain functions or ``async def``,
and the states an adapter goes through around them (:class:`Lifecycle`).

:func:`call_async` is for an adapter that owns an event loop (ASGI): a
coroutine function is awaited on that loop, a plain function runs in a thread
so it cannot block the loop (and an awaitable it returns is then awaited).
:func:`call_sync` is for one that does not (WSGI): an awaitable result is run to
completion with :func:`asyncio.run`.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Lifecycle", "call_async", "call_sync", "describe"]


class Lifecycle(enum.Enum):
    """Where an adapter is: ``startup`` not run yet, it succeeded (serving),
    it raised (every request is answered 500), ``shutdown`` has run."""

    NEW = "new"
    RUNNING = "running"
    FAILED = "failed"
    STOPPED = "stopped"


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


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line (the message's first line)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
