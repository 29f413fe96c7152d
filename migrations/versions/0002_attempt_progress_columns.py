"""jobs: when the current attempt started and from which step (the ETA's rate)

The ETA of a resumed job used to be measured from `started_at`, which every claim reset, while
the step count went on from the checkpoint: the rate looked far too fast. `started_at` now keeps
the first start, and these two columns date the current attempt.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 18:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Jobs a worker holds at upgrade time keep an ETA: their `started_at` was set by the claim of the
# attempt now running (the old behaviour), which is what the new columns mean; where that attempt
# resumed from is not recorded, so 0, as the old computation assumed.
_LEASED = ("running", "cancelling")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt_started_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("attempt_start_step", sa.Integer(), nullable=True))

    jobs = sa.table(
        "jobs",
        sa.column("status", sa.String),
        sa.column("started_at", sa.DateTime(timezone=True)),
        sa.column("attempt_started_at", sa.DateTime(timezone=True)),
        sa.column("attempt_start_step", sa.Integer),
    )
    op.execute(
        jobs.update()
        .where(jobs.c.status.in_(_LEASED), jobs.c.started_at.is_not(None))
        .values(attempt_started_at=jobs.c.started_at, attempt_start_step=0)
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("attempt_start_step")
        batch_op.drop_column("attempt_started_at")
