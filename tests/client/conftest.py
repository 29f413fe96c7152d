"""One real `eraser serve` (local profile, real worker) for every client and CLI test."""

from collections.abc import Iterator

import pytest
from local_server import LocalServer, serving


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with serving(tmp_path_factory.mktemp("client-serve")) as running:
        yield running


@pytest.fixture(scope="session")
def api_key(server: LocalServer) -> str:
    return server.issue_key("client-tests")
