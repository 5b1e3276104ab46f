"""Delivery engine: message kinds, notice state per recipient, attempt history.

Revision ID: 0002_delivery
Revises: 0001_initial
Create Date: 2026-11-21

- ``queued_message.kind``: email, invite_email or notice (a bounce we generated);
- ``queue_recipient.notified``: which delivery status notification went to the
  sender about this recipient ("", "delay", "final"), indexed with ``state`` so
  the notifier finds pending work without reading the whole queue;
- ``delivery_attempt``: one row per attempt and recipient, with the answer.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_delivery"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("queued_message") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="email"))
    with op.batch_alter_table("queue_recipient") as batch:
        batch.add_column(sa.Column("notified", sa.String(length=16), nullable=False, server_default=""))
    op.create_index("ix_queue_recipient_state_notified", "queue_recipient", ["state", "notified"])
    op.create_table(
        "delivery_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("node", sa.String(length=128), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reply", sa.String(length=1000), nullable=False),
        sa.Column("remote", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["recipient_id"], ["queue_recipient.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_delivery_attempt_recipient_id", "delivery_attempt", ["recipient_id"])
    op.create_index("ix_delivery_attempt_message_id", "delivery_attempt", ["message_id"])
    op.create_index("ix_delivery_attempt_at", "delivery_attempt", ["at"])


def downgrade() -> None:
    op.drop_table("delivery_attempt")
    op.drop_index("ix_queue_recipient_state_notified", "queue_recipient")
    with op.batch_alter_table("queue_recipient") as batch:
        batch.drop_column("notified")
    with op.batch_alter_table("queued_message") as batch:
        batch.drop_column("kind")
