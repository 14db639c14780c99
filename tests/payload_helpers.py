"""Test helpers: a checkpoint whose unpickling creates a marker file, and a local HTTP server."""
import contextlib
import functools
import http.server
import threading

import torch


class _Payload:
    """Unpickling it calls ``open(marker, 'w')``: the marker file appears."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def write_payload(path, marker):
    """A checkpoint whose ``meta`` holds the payload; returns ``path``."""
    torch.save({'state_dict': {'w': torch.zeros(2)}, 'meta': {'x': _Payload(marker)}}, path)
    return path


@contextlib.contextmanager
def serve_directory(root):
    """Serve ``root`` over HTTP on 127.0.0.1 (a free port) while the body runs.

    Yields:
        str: The base URL, ``http://127.0.0.1:PORT``.
    """
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs=dict(poll_interval=0.05),
                              daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{httpd.server_address[1]}'
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


