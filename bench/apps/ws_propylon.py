"""The WebSocket echo of the ws-* scenarios on Propylon, in two handler styles.

- ``async_app``: ``async def echo(ws)``, run on the worker's asyncio loop;
- ``event_app``: an event handler object (``on_message``), each message a
  short job on the Python thread pool.

Both answer on ``/echo`` (the bench's URL), with the same behaviour as
``ws_apps.asgi_echo``: each message comes back as it came. A Propylon without
WebSocket support exits at start or refuses the handshake, and the bench
reports that row as failed.
"""

import propylon


async def echo(ws):
    async for message in ws:
        await ws.send(message)


class EventEcho:
    def on_message(self, ws, message):
        ws.send(message)


async_app = propylon.Application(websocket={"/echo": echo})
event_app = propylon.Application(websocket={"/echo": EventEcho()})
