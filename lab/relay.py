"""`python -m lab.relay HOST PORT`: copy stdin/stdout to a TCP connection, for ssh's ProxyCommand.

ssh runs in the machine's own namespace; its ProxyCommand runs this under `ip netns exec <lab>`, so the
TCP connection starts inside the lab network and nothing routes between the two.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys


def relay(host: str, port: int) -> int:
    sock = socket.create_connection((host, port), timeout=15)
    sock.settimeout(None)
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "in")
    selector.register(sock, selectors.EVENT_READ, "sock")
    while True:
        for key, _ in selector.select():
            if key.data == "in":
                data = os.read(sys.stdin.fileno(), 65536)
                if not data:
                    sock.shutdown(socket.SHUT_WR)
                    selector.unregister(sys.stdin.fileno())
                    continue
                sock.sendall(data)
            else:
                data = sock.recv(65536)
                if not data:
                    return 0
                os.write(sys.stdout.fileno(), data)


if __name__ == "__main__":
    sys.exit(relay(sys.argv[1], int(sys.argv[2])))
