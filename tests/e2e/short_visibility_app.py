"""The real worker app with a Redis visibility timeout shorter than a job: for tests only.

Production refuses such a setting (`Settings` checks soft < hard time limit < visibility
timeout), because Redis then hands a still-running job's message to a second worker. That is
exactly the situation the redelivery test needs, so this module takes the real app
(`worker.celery_app.app`, with its tasks, signals and limits untouched) and changes only how
kombu's Redis transport treats unacknowledged messages:

- `visibility_timeout`: an unacked message older than this is put back on its queue;
- `unacked_restore_interval` / `unacked_restore_throttle`: how often an idle worker's event loop
  sweeps for such messages (by default every 10th call of a 10 s timer, i.e. ~100 s);
- `unacked_key`, `unacked_index_key`, `unacked_mutex_key`: kombu keeps unacked messages in ONE
  hash per Redis database, shared by every queue. Other test sessions' workers use that database
  with the real 7 h timeout; a 2 s sweep over the shared hash would redeliver *their* running
  jobs. Keys named after this session's queue keep the sweep to our own messages (and let the
  session's clean-up find them).

Start with `celery -A tests.e2e.short_visibility_app worker ...` from the repository root.
"""

from typing import Any

from core.settings import get_settings
from worker.celery_app import app

VISIBILITY_TIMEOUT_S = 2
RESTORE_SWEEP_INTERVAL_S = 1


def unacked_keys(queue_name: str) -> dict[str, str]:
    """The Redis keys of this app's unacked messages for the session queue `queue_name`."""
    return {
        "unacked_key": f"unacked.{queue_name}",
        "unacked_index_key": f"unacked_index.{queue_name}",
        "unacked_mutex_key": f"unacked_mutex.{queue_name}",
    }


def short_visibility_options(base: dict[str, Any], queue_name: str) -> dict[str, Any]:
    return {
        **base,
        "visibility_timeout": VISIBILITY_TIMEOUT_S,
        "unacked_restore_interval": RESTORE_SWEEP_INTERVAL_S,
        "unacked_restore_throttle": 1,  # scan on every sweep
        **unacked_keys(queue_name),
    }


app.conf.broker_transport_options = short_visibility_options(
    dict(app.conf.broker_transport_options or {}), get_settings().queue_name
)

__all__ = ["app"]
