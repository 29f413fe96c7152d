"""Faults injected into a real HTTP connection to a real server: a response lost after the server
acted on the request, a stream cut mid-way, a 429/503 answer before the real one. Everything else
passes through to the server unchanged, and every request is recorded."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx

Match = Callable[[httpx.Request], bool]


class _CutStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, limit: int, request: httpx.Request) -> None:
        self.inner, self.limit, self.request = inner, limit, request

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self.inner:
            if sent + len(chunk) >= self.limit:
                yield chunk[: self.limit - sent]
                raise httpx.RemoteProtocolError("peer closed the connection", request=self.request)
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self.inner.close()


@dataclass
class _Fault:
    match: Match
    kind: str
    times: int = 1
    after_bytes: int = 0
    status: int = 0
    retry_after: int = 0


@dataclass
class FaultyTransport(httpx.BaseTransport):
    inner: httpx.HTTPTransport = field(default_factory=httpx.HTTPTransport)
    requests: list[httpx.Request] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)

    def lose_response(self, match: Match, times: int = 1) -> None:
        """The server gets the request and acts on it; the client never sees the answer."""
        self._faults.append(_Fault(match, "lose", times=times))

    def cut_stream(self, match: Match, after_bytes: int, times: int = 1) -> None:
        self._faults.append(_Fault(match, "cut", times, after_bytes=after_bytes))

    def answer_first(self, match: Match, status: int, retry_after: int, times: int = 1) -> None:
        """Answer `status` with Retry-After (as an overloaded proxy would) before passing on."""
        self._faults.append(_Fault(match, "status", times, status=status, retry_after=retry_after))

    def _fault_for(self, request: httpx.Request) -> _Fault | None:
        for fault in self._faults:
            if fault.times > 0 and fault.match(request):
                fault.times -= 1
                return fault
        return None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        fault = self._fault_for(request)
        if fault is not None and fault.kind == "status":
            self.statuses.append(fault.status)
            return httpx.Response(
                fault.status,
                headers={"Retry-After": str(fault.retry_after)},
                json={"type": "about:blank", "title": "Slow down", "status": fault.status},
                request=request,
            )
        response = self.inner.handle_request(request)
        self.statuses.append(response.status_code)
        if fault is None:
            return response
        if fault.kind == "lose":
            response.read()
            response.close()
            raise httpx.ReadError("connection reset before the response arrived", request=request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_CutStream(response.stream, fault.after_bytes, request),
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        self.inner.close()


def path_is(method: str, path: str) -> Match:
    return lambda request: request.method == method and request.url.path == path


def path_endswith(method: str, suffix: str) -> Match:
    return lambda request: request.method == method and request.url.path.endswith(suffix)
