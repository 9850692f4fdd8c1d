"""Length-prefixed pickle frames over a unix socket, with optional file descriptors.

Used only between trusted processes (the pool's owner, the zygote and the
per-child supervisor); the sandboxed code never holds one of these sockets.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct

_HEADER = struct.Struct("!II")  # payload length, number of fds
MAX_FDS = 8


def send(sock: socket.socket, obj, fds: list[int] = ()) -> None:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    header = _HEADER.pack(len(payload), len(fds))
    if fds:
        socket.send_fds(sock, [header], list(fds))
    else:
        sock.sendall(header)
    sock.sendall(payload)


def recv(sock: socket.socket):
    """Return ``(obj, fds)``; raise EOFError when the peer has closed."""
    msg, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, MAX_FDS)
    if not msg:
        raise EOFError("channel closed")
    msg += _recv_exact(sock, _HEADER.size - len(msg))
    length, nfds = _HEADER.unpack(msg)
    if len(fds) != nfds:
        raise EOFError(f"expected {nfds} fds, got {len(fds)}")
    for fd in fds:
        os.set_inheritable(fd, False)
    return pickle.loads(_recv_exact(sock, length)), fds


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise EOFError("channel closed mid-frame")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)
