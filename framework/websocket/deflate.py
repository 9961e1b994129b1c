"""permessage-deflate (RFC 7692) with bounded memory and bounded inflation.

wsproto's extension inflates a whole frame at once and keeps zlib's default state (a 32 KiB
window and memory level 8: 256 KiB for a compressor). Here a message may not inflate past
the connection's message limit (a decompression bomb closes with 1009 after at most that many
bytes), our compressor uses a 4 KiB window (``server_max_window_bits=12``) at memory level
5 (32 KiB in all), and a client that offers ``client_max_window_bits`` is asked for 12 too.
"""

from __future__ import annotations

import zlib

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

__all__ = ["BoundedDeflate", "negotiate"]

#: Window of our compressor, and of the client's when it lets us choose (RFC 7692 7.1.2).
WINDOW_BITS = 12
#: zlib memory level of our compressor: (1 << (5 + 9)) bytes of state beside the window.
MEMORY_LEVEL = 5

_WINDOW_PARAMS = ("client_max_window_bits", "server_max_window_bits")


class BoundedDeflate(PerMessageDeflate):
    """``PerMessageDeflate`` whose inflated messages stop at ``max_message_size``."""

    def __init__(self, max_message_size: int) -> None:
        super().__init__(server_max_window_bits=WINDOW_BITS)
        self.max_message_size = max_message_size
        self._inflated = 0

    def accept(self, offer: str) -> bool | None | str:
        offered = {part.split("=")[0].strip() for part in offer.split(";")[1:]}
        try:
            answer = super().accept(offer)
        except ValueError:
            return None
        if not isinstance(answer, str):
            return answer
        params = [p for p in answer.split("; ") if p and not p.startswith(_WINDOW_PARAMS)]
        # We may always narrow our own window (RFC 7692 7.1.2.1), never widen what was asked.
        self.server_max_window_bits = min(self.server_max_window_bits or 15, WINDOW_BITS)
        params.append(f"server_max_window_bits={self.server_max_window_bits}")
        if "client_max_window_bits" in offered:
            # The client offered the parameter: it lets us choose its window (7.1.2.2).
            self.client_max_window_bits = min(self.client_max_window_bits or 15, WINDOW_BITS)
            params.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(params)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        assert self._decompressor is not None
        return self._inflate(bytes(data))

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if not fin or not self._inbound_compressed or not self._inbound_is_compressible:
            if fin:
                self._inflated = 0
            return super().frame_inbound_complete(proto, fin)
        tail = self._inflate(b"\x00\x00\xff\xff")
        if isinstance(tail, CloseReason):
            return tail
        self._inflated = 0
        self._inbound_compressed = None
        if self.client_no_context_takeover:
            self._decompressor = None
        return tail

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        decompressor = self._decompressor
        assert decompressor is not None
        room = self.max_message_size - self._inflated
        try:
            out = decompressor.decompress(data, room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if self._inflated > self.max_message_size or decompressor.unconsumed_tail:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_outbound(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        if self._compressor is None and self._compressible_opcode(opcode):
            # zlib's raw deflate takes no 8-bit window; 9 is what a peer asking 8 can read.
            bits = max(self.server_max_window_bits or 15, 9)
            self._compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits, MEMORY_LEVEL
            )
        return super().frame_outbound(proto, opcode, rsv, data, fin)


def negotiate(header_values: list[str], max_message_size: int) -> tuple[BoundedDeflate, str] | None:
    """The extension and its ``Sec-WebSocket-Extensions`` answer, for the client's offers."""
    for value in header_values:
        for offer in value.split(","):
            name = offer.split(";")[0]
            if name.strip().lower() != "permessage-deflate":
                continue
            extension = BoundedDeflate(max_message_size)
            answer = extension.accept(offer.strip())
            if isinstance(answer, str):
                return extension, "permessage-deflate" + (f"; {answer}" if answer else "")
    return None
