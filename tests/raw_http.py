"""A loopback server that answers byte by byte what an HTTP server library would not send."""

import io
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from PIL import Image


@contextmanager
def raw_http_server(answer: Callable[[socket.socket, threading.Event], None]) -> Iterator[str]:
    """A URL of 127.0.0.1 whose every request ``answer(connection, stop)`` answers byte by byte (what
    an HTTP server library would not send: dripped header lines, a body broken off); ``stop`` is set
    when the server ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def handle(connection: socket.socket) -> None:
        with connection:
            request = b""
            while b"\r\n\r\n" not in request and (chunk := connection.recv(4096)):
                request += chunk
            try:
                answer(connection, stop)
            except OSError:  # the client hung up
                pass

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:  # the listener was closed
                return
            threading.Thread(target=handle, args=(connection,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/image.png"
    finally:
        stop.set()
        listener.close()


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 60, 90)).save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png()  # a small good PNG


def half_a_body_then_hang_up(connection: socket.socket, stop: threading.Event) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n" % len(PNG)
                       + PNG[: len(PNG) // 2])
