"""The client and CLI tests run against the session's real `eraser serve`
(tests/local_server.py)."""

import pytest
from local_server import LocalServer


@pytest.fixture(scope="session")
def server(local_server: LocalServer) -> LocalServer:
    return local_server


@pytest.fixture(scope="session")
def api_key(server: LocalServer) -> str:
    return server.issue_key("client-tests")
