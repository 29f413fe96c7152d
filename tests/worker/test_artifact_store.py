"""The local artifact store against a real directory: what the worker publishes is what the API
serves, byte for byte, and nothing escapes the store's folder."""

import hashlib
import os
from pathlib import Path

import pytest

from core.artifacts import (
    ArtifactKind,
    ArtifactNotFound,
    InvalidArtifactName,
    LocalArtifactStore,
    artifact_kind,
    get_store,
)
from core.settings import Settings


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def _file(folder: Path, name: str, payload: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def test_put_records_size_and_sha256_of_the_stored_bytes(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    payload = os.urandom(3 * (1 << 20) + 17)  # spans several copy chunks
    source = _file(tmp_path / "out", "unet/diffusion_pytorch_model.safetensors", payload)

    stored = store.put("job-1", "unet/diffusion_pytorch_model.safetensors", source)

    assert stored.name == "unet/diffusion_pytorch_model.safetensors"
    assert stored.kind is ArtifactKind.WEIGHTS
    assert stored.bytes == len(payload) == store.size(stored.location)
    assert stored.sha256 == hashlib.sha256(payload).hexdigest()
    with store.open(stored.location) as reader:
        reader.seek(len(payload) - 17)  # the API serves Range requests by seeking
        assert reader.read() == payload[-17:]


def test_put_leaves_no_temporary_files_and_overwrites_atomically(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    first = store.put("job-1", "manifest.json", _file(tmp_path, "a.json", b'{"v": 1}'))
    second = store.put("job-1", "manifest.json", _file(tmp_path, "b.json", b'{"v": 2}'))

    assert first.location == second.location
    with store.open(second.location) as reader:
        assert reader.read() == b'{"v": 2}'
    assert [p.name for p in (store.root / "job-1").iterdir()] == ["manifest.json"]


def test_publications_of_one_job_are_separate(store: LocalArtifactStore, tmp_path: Path) -> None:
    source = _file(tmp_path, "delta.safetensors", b"weights")
    winner = store.put("job-1", "delta.safetensors", source, publication="worker-a")
    loser = store.put("job-1", "delta.safetensors", source, publication="worker-b")

    store.delete(loser.location)

    assert winner.location != loser.location
    assert store.size(winner.location) == len(b"weights")
    with pytest.raises(ArtifactNotFound):
        store.size(loser.location)


@pytest.mark.parametrize(
    "name", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b", "unet/.."]
)
def test_put_refuses_names_that_could_escape(
    store: LocalArtifactStore, tmp_path: Path, name: str
) -> None:
    source = _file(tmp_path, "f", b"x")
    with pytest.raises(InvalidArtifactName):
        store.put("job-1", name, source)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("job_id", ["", "..", "a/b", "."])
def test_put_refuses_job_ids_that_are_not_one_folder(
    store: LocalArtifactStore, tmp_path: Path, job_id: str
) -> None:
    with pytest.raises(InvalidArtifactName):
        store.put(job_id, "delta.safetensors", _file(tmp_path, "f", b"x"))


def test_open_refuses_locations_outside_the_store(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    secret = _file(tmp_path, "secret.txt", b"secret")
    store.root.mkdir(parents=True)
    (store.root / "link").symlink_to(secret)

    for location in ["../secret.txt", str(secret), "link", "job-1/missing.json"]:
        with pytest.raises(ArtifactNotFound):
            store.open(location)


def test_delete_job_removes_every_publication(store: LocalArtifactStore, tmp_path: Path) -> None:
    source = _file(tmp_path, "f", b"x")
    kept = store.put("job-2", "samples.png", source)
    store.put("job-1", "samples.png", source)
    store.put("job-1", "unet/config.json", source, publication="p")

    store.delete_job("job-1")
    store.delete_job("never-existed")

    assert not (store.root / "job-1").exists()
    assert store.size(kept.location) == 1


def test_writable_reports_a_root_that_cannot_be_created(tmp_path: Path) -> None:
    assert LocalArtifactStore(tmp_path / "fine").writable()
    blocker = _file(tmp_path, "a-file", b"")  # works as root too, unlike permission bits
    assert not LocalArtifactStore(blocker / "artifacts").writable()


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("delta.safetensors", ArtifactKind.WEIGHTS),
        ("unet/diffusion_pytorch_model.safetensors", ArtifactKind.WEIGHTS),
        ("unet/config.json", ArtifactKind.CONFIG),
        ("manifest.json", ArtifactKind.REPORT),
        ("adversarial_concepts.json", ArtifactKind.REPORT),
        ("training_log.jsonl", ArtifactKind.LOG),
        ("samples.png", ArtifactKind.IMAGE),
    ],
)
def test_engine_outputs_are_classified(name: str, kind: ArtifactKind) -> None:
    assert artifact_kind(name) is kind


def test_get_store_lives_under_the_data_dir(tmp_path: Path) -> None:
    store = get_store(Settings(data_dir=tmp_path))
    assert store.writable()
    assert (tmp_path / "artifacts").is_dir()
