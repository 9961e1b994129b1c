"""A chat server: rooms, and each message broadcast to everyone in the room.

Run it:   python -m framework serve examples.chat:app
Talk:     python examples/chat_client.py wss://localhost:8443/chat/lobby --name alice \\
              --ca "$(python -m framework certs dev-ca)"
Each line typed is sent to the room; what the room says is printed. ``GET /rooms`` lists
the rooms and who is in them.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from framework import App, Request, WebSocket

app = App()

#: room name -> {WebSocket: the name it chose}
rooms: defaultdict[str, dict[WebSocket, str]] = defaultdict(dict)

#: How long one member may hold up a broadcast before it is dropped: a member that does
#: not read must not stall the room.
SEND_TIMEOUT = 5.0
_closing: set[asyncio.Future[None]] = set()  # members being dropped (referenced until done)


async def broadcast(room: str, message: dict[str, str]) -> None:
    """Send ``message`` to every member of ``room`` at once; drop the ones that lag."""
    members = list(rooms[room])

    async def deliver(member: WebSocket) -> None:
        try:
            await asyncio.wait_for(member.send_json(message), SEND_TIMEOUT)
        except (TimeoutError, ConnectionError):
            rooms[room].pop(member, None)
            # Closed beside the broadcast: its closing handshake may take the close timeout.
            closing = asyncio.ensure_future(member.close(1008, "too slow for the room"))
            _closing.add(closing)
            closing.add_done_callback(_closing.discard)

    await asyncio.gather(*(deliver(member) for member in members))


@app.websocket("/chat/{room}")
async def chat(ws: WebSocket, room: str) -> None:
    name = (ws.request.query.get("name") or "anonymous")[:32]
    await ws.accept()
    rooms[room][ws] = name
    await broadcast(room, {"event": "join", "name": name, "room": room})
    try:
        async for text in ws:
            if isinstance(text, str) and text.strip():
                await broadcast(room, {"from": name, "text": text[:4096]})
    finally:
        rooms[room].pop(ws, None)
        if rooms[room]:
            await broadcast(room, {"event": "leave", "name": name, "room": room})
        else:
            del rooms[room]


@app.get("/rooms")
async def list_rooms(request: Request) -> dict[str, list[str]]:
    return {room: sorted(members.values()) for room, members in rooms.items()}


if __name__ == "__main__":
    app.run(port=8443)
