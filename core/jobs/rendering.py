"""Job views as JSON bytes, cached per process by the stored row they show.

A `JobView` is a pure function of its row: even the ETA is measured against `updated_at`, not the
clock. Polling clients mostly read jobs that have not changed since they last looked, and for a
page of 20 decoding the JSON columns and building and serialising the views cost more than the
query (docs/performance.md). So the bytes are kept, keyed by the whole row as the database
returned it (JSON columns as their stored text): any change of any shown column, by whatever
wrote it and however soon after the last one, is a different key. A key of (id, updated_at)
would be smaller but would trust every writer to move `updated_at`.
"""

import json
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from core.jobs.reads import decode
from core.jobs.schemas import JobView


def _render(row: tuple[Any, ...]) -> bytes:
    return JobView.of(decode(row)).model_dump_json().encode()


class JobRenderer:
    """`JobView.of(job).model_dump_json()` for rows of `reads.JOB_ROW_COLUMNS`, remembering the
    last `cache_size` rows it rendered (0: none). One per app, so that apps in one process (the
    tests) do not share it; thread-safe (functools.lru_cache)."""

    def __init__(self, cache_size: int) -> None:
        self._cached: Callable[[tuple[Any, ...]], bytes] = lru_cache(maxsize=cache_size)(_render)

    def job(self, row: Sequence[Any]) -> bytes:
        return self._cached(tuple(row))

    def page(self, rows: Sequence[Sequence[Any]], has_more: bool, next_cursor: str | None) -> bytes:
        """What `JobPage(items=..., has_more=..., next_cursor=...).model_dump_json()` gives,
        byte for byte (tests/api/test_read_path.py), from the cached views."""
        items = b",".join(self.job(row) for row in rows)
        return b"".join(
            (
                b'{"items":[',
                items,
                b'],"has_more":',
                b"true" if has_more else b"false",
                b',"next_cursor":',
                json.dumps(next_cursor).encode(),
                b"}",
            )
        )
