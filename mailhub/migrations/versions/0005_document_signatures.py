"""Document signatures in the usage ledger: the outcome of a document submission
(signed-valid, signed-invalid, unsigned) and the signer's certificate subject.

Revision ID: 0005_document_signatures
Revises: 0004_api_tokens
Create Date: 2026-11-21

Matches mailhub/models.py UsageEvent (tests compare the migrated schema with the models).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_document_signatures"
down_revision = "0004_api_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("usage_event", sa.Column("signature", sa.String(length=16), nullable=True))
    op.add_column("usage_event", sa.Column("signer", sa.String(length=400), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_event") as batch:
        batch.drop_column("signer")
        batch.drop_column("signature")
