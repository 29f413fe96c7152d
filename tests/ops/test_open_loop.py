"""bench/open_loop.py, the load behind docs/performance.md's latency tables: it offers the rate it
is asked for whatever the server does, and counts a latency from the request's due time, so a
server that stalls shows the stall in the requests that queued behind it."""

import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from open_loop import open_loop


class _Server(ThreadingHTTPServer):
    stall_until = 0.0  # monotonic time before which every answer waits


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the API serves

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        time.sleep(max(0.0, server.stall_until - time.monotonic()))
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _url(httpd: _Server) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/"


def test_it_offers_the_asked_rate_and_every_answer_is_counted(server: _Server) -> None:
    result = open_loop(_url(server), rate=100, seconds=2.0)
    answered = sum(result.statuses.values())
    assert result.statuses == {200: answered}
    # Poisson arrivals: 200 expected, sd ~14
    assert 150 <= answered <= 250
    assert 75 <= result.achieved <= 125
    assert result.percentiles_ms["50"] < 50


def test_a_stall_shows_in_the_requests_queued_behind_it(server: _Server) -> None:
    """A closed-loop client would wait out the stall and send nothing meanwhile; this one keeps
    sending, and a request due at time d in a stall of 0.4 s reports 0.4 - d: the ~15 % due in
    its first 0.15 s report more than 250 ms."""
    server.stall_until = time.monotonic() + 0.4
    result = open_loop(_url(server), rate=100, seconds=1.0)
    assert sum(result.statuses.values()) >= 70
    assert result.percentiles_ms["95"] > 250
