"""Keys over the API: the operator's bootstrap admin key (from the CLI) creates, lists and
revokes keys for a principal; a revoked key stops working at once, console sessions included;
ordinary keys cannot do any of it."""

import subprocess

import httpx
import pytest
from local_server import ERASER, LocalServer

from client import EraserClient, ProblemError


def bootstrap_admin_key(server: LocalServer) -> str:
    result = subprocess.run(
        [ERASER, "keys", "create", "--principal", "operator", "--admin"],
        env=server.environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "admin prefix" in result.stderr
    return result.stdout.strip()


def test_an_admin_key_creates_lists_and_revokes_keys_for_a_principal(server: LocalServer) -> None:
    with EraserClient(server.url, bootstrap_admin_key(server)) as admin:
        issued = admin.create_key("team-blue")
        assert issued.principal == "team-blue" and issued.key.startswith(issued.prefix)

        with EraserClient(server.url, issued.key) as team:
            assert list(team.jobs()) == []  # a working key, for its own (empty) jobs
            with pytest.raises(ProblemError) as refused:
                team.create_key("team-red")  # not an admin
            assert refused.value.status == 403

        [listed] = admin.keys("team-blue")
        assert listed.prefix == issued.prefix and listed.revoked_at is None
        assert issued.key not in str(admin.keys())  # listings never carry secrets

        revoked = admin.revoke_key(issued.prefix)
        assert revoked.revoked_at is not None
        with EraserClient(server.url, issued.key) as team, pytest.raises(ProblemError) as gone:
            list(team.jobs())
        assert gone.value.status == 401

        with pytest.raises(ProblemError) as invalid:
            admin.create_key("no spaces allowed")
        assert invalid.value.status == 422
        assert [error.field for error in invalid.value.errors] == ["principal"]
        with pytest.raises(ProblemError) as unknown:
            admin.revoke_key("ek_nothere")
        assert unknown.value.status == 404


def test_revoking_a_key_ends_its_console_sessions(server: LocalServer) -> None:
    with EraserClient(server.url, bootstrap_admin_key(server)) as admin:
        issued = admin.create_key("team-green")
        with httpx.Client(base_url=server.url, follow_redirects=True) as browser:
            page = browser.get("/ui/signin").text
            token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            browser.post("/ui/signin", data={"api_key": issued.key, "csrf_token": token})
            assert browser.get("/ui/jobs").url.path == "/ui/jobs"
            admin.revoke_key(issued.prefix)
            assert browser.get("/ui/jobs").url.path == "/ui/signin"
