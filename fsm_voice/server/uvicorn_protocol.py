"""uvicorn's sans-I/O WebSocket protocol, with a peer's bad text frames handled as
`/voice` needs them (the companion of `server.py`, the one other uvicorn importer).

uvicorn closes a socket that sends a text frame that is not UTF-8 with 1007, but logs
each one with its traceback at ERROR, and when the peer's own close frame came in the
same read it fails on sending a second close (`InvalidState` out of
`data_received`: another traceback, and the app hears only of a dropped socket).
Here the app always hears 1007, which the call logs as the violation, and the
server's output stays quiet: any peer can send such bytes.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from fsm_voice.call.socket import CLOSE_INVALID_DATA

__all__ = ["MediaStreamsProtocol"]


def _is_utf8(frames: list[bytes]) -> bool:
    if len(frames) == 1 and frames[0].isascii():  # Twilio's messages: no decoding twice
        return True
    try:
        b"".join(frames).decode()
    except UnicodeDecodeError:
        return False
    return True


class MediaStreamsProtocol(WebSocketsSansIOProtocol):
    def send_receive_event_to_app(self) -> None:
        text = self.curr_msg_data_type == "text"
        if text and not self.close_sent and not _is_utf8(self.frames):
            self.frames = []
            self._refuse_text()
            return
        super().send_receive_event_to_app()

    def _refuse_text(self) -> None:
        if self.conn.state is State.OPEN:
            self.conn.send_close(CLOSE_INVALID_DATA)
            self.handle_parser_exception()  # uvicorn's own: tell the app, close the socket
            return
        # The peer's close came in the same read and was answered already: the app
        # hears 1007 all the same; what follows in that read is dropped (close_sent).
        self.queue.put_nowait({"type": "websocket.disconnect", "code": CLOSE_INVALID_DATA})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()
