"""The WebSocket echo of the ws-* scenarios, for the peers: ASGI and RSGI.

Every WebSocket message comes back as it came (text as text, binary as
binary), on any path; the bench connects to ``/echo``. Any HTTP request
gets 200 ``ok`` (2 bytes), so that a plain GET can tell the server is up.

- ``asgi_echo``: ASGI 3 (uvicorn with either WebSocket library, hypercorn,
  Granian ``--interface asgi``), lifespan included.
- ``rsgi_echo``: Granian's RSGI (``--interface rsgi``).

Propylon's echo, in both handler styles, is in ``ws_propylon.py``. Nothing
here imports a server: each server imports only what it runs.
"""


async def asgi_echo(scope, receive, send):
    kind = scope["type"]
    if kind == "websocket":
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":  # websocket.disconnect
                return
            text = message.get("text")
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
    elif kind == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


# granian.rsgi.WebsocketMessageType, an int enum: close 0, bytes 1, string 2.
RSGI_BYTES, RSGI_STRING = 1, 2


async def rsgi_echo(scope, protocol):
    if scope.proto != "ws":
        protocol.response_bytes(200, [("content-length", "2")], b"ok")
        return
    transport = await protocol.accept()
    try:
        while True:
            message = await transport.receive()
            if message.kind == RSGI_BYTES:
                await transport.send_bytes(message.data)
            elif message.kind == RSGI_STRING:
                await transport.send_str(message.data)
            else:  # close
                break
    except RuntimeError:  # RSGIProtocolClosed: the client dropped the connection
        pass
    protocol.close(None)
