"""The lease heartbeat: a thread beside the training loop.

Training blocks the task's thread for hours, so the lease is renewed from a second thread every
`heartbeat_seconds`. In between, every `cancel_poll_seconds`, the thread reads the cancel flag
(a one-row SELECT), so a cancel takes effect within seconds without renewing the lease that often.
The training loop polls `should_stop` at every step boundary, which only reads memory (never the
database) so it costs nothing per step.
If the lease is found gone (the reaper requeued the job, another worker claimed it) the run must
stop and publish nothing: `lease_lost` tells the task so.
"""

import logging
import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from core.db.session import session_scope
from core.jobs.lifecycle import LeaseStatus, heartbeat, lease_status

logger = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        job_id: str,
        owner: str,
        *,
        lease_seconds: float,
        interval_seconds: float,
        cancel_poll_seconds: float,
    ) -> None:
        self._sessions = sessions
        self._job_id = job_id
        self._owner = owner
        self._lease_seconds = lease_seconds
        self._interval_seconds = interval_seconds
        self._poll_seconds = min(cancel_poll_seconds, interval_seconds)
        self._stopping = threading.Event()
        self._cancel_requested = threading.Event()
        self._lease_lost = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"eraser-heartbeat-{job_id}", daemon=True
        )

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested.is_set()

    @property
    def lease_lost(self) -> bool:
        return self._lease_lost.is_set()

    def should_stop(self) -> bool:
        return self.cancel_requested or self.lease_lost

    def beat(self) -> None:
        """One renewal (also called directly by the task, e.g. before publishing)."""
        with session_scope(self._sessions) as session:
            self._observe(heartbeat(session, self._job_id, self._owner, self._lease_seconds))

    def poll(self) -> None:
        """Read the cancel flag (and whether the lease is still ours) without renewing."""
        with session_scope(self._sessions) as session:
            self._observe(lease_status(session, self._job_id, self._owner))

    def _observe(self, status: LeaseStatus) -> None:
        if not status.held:
            if not self._lease_lost.is_set():
                logger.warning("job %s: lease lost by %s; stopping", self._job_id, self._owner)
            self._lease_lost.set()
        elif status.cancel_requested:
            self._cancel_requested.set()

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._thread.join(self._interval_seconds + 5)

    def _loop(self) -> None:
        next_renewal = time.monotonic() + self._interval_seconds
        while not self._stopping.wait(self._poll_seconds):
            if self._lease_lost.is_set():
                return
            try:
                if time.monotonic() >= next_renewal:
                    self.beat()
                    next_renewal = time.monotonic() + self._interval_seconds
                else:
                    self.poll()
            except Exception:
                # The database may be briefly away; the lease outlives several missed beats.
                logger.exception("job %s: heartbeat failed", self._job_id)
