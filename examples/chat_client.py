"""A terminal client for ``examples/chat.py``: lines from stdin go to the room, the room's
messages are printed (``* alice joined``, ``alice: hello``). Ends at end of input (Ctrl-D).

    python examples/chat_client.py wss://localhost:8443/chat/lobby --name alice \\
        --ca "$(python -m framework certs dev-ca)"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from urllib.parse import quote

from framework.errors import FrameworkError
from framework.websocket import WebSocket, WebSocketDisconnect
from framework.websocket.client import connect


def show(raw: str | bytes) -> str:
    message = json.loads(raw)
    if "event" in message:
        return f"* {message['name']} {'joined' if message['event'] == 'join' else 'left'}"
    return f"{message['from']}: {message['text']}"


async def printer(ws: WebSocket) -> None:
    try:
        async for raw in ws:
            print(show(raw), flush=True)
    except WebSocketDisconnect:
        pass
    if ws.close_code not in (None, 1000):
        print(f"* closed by the server: {ws.close_code} {ws.close_reason}", flush=True)


async def main(url: str, name: str, ca: str | None) -> int:
    async with connect(f"{url}?name={quote(name)}", ca=ca) as ws:
        reading = asyncio.create_task(printer(ws))
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line or reading.done():
                break
            await ws.send_text(line.rstrip("\n"))
        await ws.close()
        await reading
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="talk in a room of examples/chat.py")
    parser.add_argument("url", help="wss://host:port/chat/ROOM")
    parser.add_argument("--name", default="anonymous", help="the name the room sees")
    parser.add_argument("--ca", help="the CA certificate (PEM) that signed the server's")
    args = parser.parse_args()
    try:
        sys.exit(asyncio.run(main(args.url, args.name, args.ca)))
    except (FrameworkError, OSError, ValueError) as exc:
        sys.exit(f"chat_client: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
