"""idempotency_records: index on created_at for the reaper's TTL purge

Every worker's reaper deletes records older than `ERASER_IDEMPOTENCY_TTL_SECONDS` on each sweep;
without an index that DELETE would scan the whole table every few seconds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 18:46:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.create_index("ix_idempotency_records_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_index("ix_idempotency_records_created_at")
