"""Leave nothing of a test session's Celery queue in Redis: its messages, and its kombu keys.

Every test session uses a unique queue name (`gpu-test-<hex>`, see conftest.py) on a Redis
database other sessions share (db 15), so the clean-up must touch this queue's keys only, never
FLUSHDB. What kombu's Redis transport keeps for a queue `q`:
- the message lists `q` and `q<sep><priority>`;
- the binding tables `_kombu.binding.q` and `_kombu.binding_permanent.q` (the exchange is named
  after the queue);
- unacked messages: in the hashes a test app names after the queue (`short_visibility_app`), or
  in the shared `unacked` hash and `unacked_index` sorted set, as entries whose exchange or routing
  key is `q` (a worker killed mid-job leaves its message there; a later sweep by any worker would
  put it back under `q`, or in kombu's dead-letter queue once `q`'s bindings are gone).

A module of its own (not conftest.py) so that a test can check it.
"""

import json
import re
from collections.abc import Iterator

import redis

from core.queue import celery_client
from core.settings import Settings

SHARED_UNACKED_HASH = "unacked"
SHARED_UNACKED_INDEX = "unacked_index"


def purge_messages(settings: Settings) -> None:
    """Drop the queue's waiting messages (their jobs' rows are deleted after each test)."""
    with celery_client(settings).connection_for_write() as connection:
        connection.default_channel.queue_purge(settings.queue_name)


def delete_queue_keys(broker_url: str, queue_name: str) -> int:
    """Delete every Redis key and shared unacked entry of `queue_name`; returns how many."""
    client = redis.Redis.from_url(broker_url)
    try:
        name = _glob_escape(queue_name)
        # the message lists start with the name, the binding and unacked tables end with it
        keys = {
            key
            for pattern in (f"{name}*", f"*{name}")
            for key in client.scan_iter(match=pattern, count=1000)
        }
        deleted = int(client.delete(*keys)) if keys else 0
        return deleted + _delete_shared_unacked(client, queue_name)
    finally:
        client.close()


def _delete_shared_unacked(client: redis.Redis, queue_name: str) -> int:
    tags = list(_unacked_tags_of(client, queue_name))
    for tag in tags:
        client.zrem(SHARED_UNACKED_INDEX, tag)
        client.hdel(SHARED_UNACKED_HASH, tag)
    return len(tags)


def _unacked_tags_of(client: redis.Redis, queue_name: str) -> Iterator[bytes]:
    for tag, value in client.hscan_iter(SHARED_UNACKED_HASH):
        try:
            _message, exchange, routing_key = json.loads(value)
        except (ValueError, TypeError):
            continue  # not a kombu entry: not ours to judge
        if queue_name in (exchange, routing_key):
            yield tag


def _glob_escape(text: str) -> str:
    """Redis MATCH patterns treat * ? [ ] and backslash specially."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
