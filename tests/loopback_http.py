"""A throw-away HTTP server on loopback for unit tests (a profile server, a misbehaving boot server)."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def serving(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run `handler` on 127.0.0.1 for the block; yields `127.0.0.1:<port>`."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def directory(path: Path) -> Callable[..., Any]:
    """A handler serving the files of `path`, quietly."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    return functools.partial(Quiet, directory=str(path))
