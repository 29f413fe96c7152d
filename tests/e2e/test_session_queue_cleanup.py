"""The session clean-up (tests/session_queue.py) removes one queue's traces from the shared Redis
database and nothing of any other queue's. Real Redis, real kombu publishing."""

import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from session_queue import SHARED_UNACKED_HASH, SHARED_UNACKED_INDEX, delete_queue_keys

from core.queue import enqueue_job
from core.settings import Profile, Settings


@pytest.fixture
def two_queues() -> Iterator[tuple[Settings, Settings]]:
    """Two throwaway queues on the test broker, each with a waiting message, its kombu binding
    tables, and an unacked message (in the shared hash and in a hash named after the queue)."""
    suffix = uuid.uuid4().hex[:12]
    ours = Settings(profile=Profile.TEST, queue_name=f"gpu-test-cleanup-{suffix}")
    neighbour = Settings(profile=Profile.TEST, queue_name=f"gpu-test-neighbour-{suffix}")
    client = redis.Redis.from_url(ours.celery_broker_url)
    for settings in (ours, neighbour):
        queue = settings.queue_name
        enqueue_job(settings, f"job-of-{queue}")
        entry = json.dumps([{"body": "..."}, queue, queue])
        client.hset(SHARED_UNACKED_HASH, f"tag-{queue}", entry)
        client.zadd(SHARED_UNACKED_INDEX, {f"tag-{queue}": time.time()})
        client.hset(f"unacked.{queue}", f"tag-{queue}", entry)
    try:
        yield ours, neighbour
    finally:
        for settings in (ours, neighbour):
            delete_queue_keys(settings.celery_broker_url, settings.queue_name)
        client.close()


def _traces(client: redis.Redis, queue: str) -> set[str]:
    """Every key naming `queue`, and its entries in the shared unacked hash and index."""
    keys = set(client.scan_iter(match=f"*{queue}*", count=1000))
    tag = f"tag-{queue}"
    shared = {f"{SHARED_UNACKED_HASH}:{tag}"} if client.hexists(SHARED_UNACKED_HASH, tag) else set()
    if client.zscore(SHARED_UNACKED_INDEX, tag) is not None:
        shared.add(f"{SHARED_UNACKED_INDEX}:{tag}")
    return keys | shared


def test_only_the_sessions_queue_is_removed(two_queues: tuple[Settings, Settings]) -> None:
    ours, neighbour = two_queues
    client = redis.Redis.from_url(ours.celery_broker_url, decode_responses=True)
    try:
        before_ours = _traces(client, ours.queue_name)
        before_neighbour = _traces(client, neighbour.queue_name)
        assert {
            ours.queue_name,  # the message list
            f"_kombu.binding.{ours.queue_name}",
            f"unacked.{ours.queue_name}",
            f"{SHARED_UNACKED_HASH}:tag-{ours.queue_name}",
            f"{SHARED_UNACKED_INDEX}:tag-{ours.queue_name}",
        } <= before_ours

        delete_queue_keys(ours.celery_broker_url, ours.queue_name)

        assert _traces(client, ours.queue_name) == set()
        assert _traces(client, neighbour.queue_name) == before_neighbour
    finally:
        client.close()
