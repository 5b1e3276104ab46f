"""What scoring leaves out of the usage ledger: mail only to the sender's own addresses
(``to_self``) and automatic mail (``automatic``: auto-replies, bounces).

Revision ID: 0006_ledger_nature
Revises: 0005_document_signatures
Create Date: 2026-11-21

Matches mailhub/models.py UsageEvent (tests compare the migrated schema with the models).
Existing rows get false: before this revision nothing told them apart.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_ledger_nature"
down_revision = "0005_document_signatures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("usage_event", sa.Column("to_self", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("usage_event", sa.Column("automatic", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("usage_event") as batch:
        batch.drop_column("automatic")
        batch.drop_column("to_self")
