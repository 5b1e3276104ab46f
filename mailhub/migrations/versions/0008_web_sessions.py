"""Web console sessions.

Revision ID: 0008_web_sessions
Revises: 0007_scoring
Create Date: 2026-11-22

Matches mailhub/models.py WebSession (tests compare the migrated schema with the models).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_web_sessions"
down_revision = "0007_scoring"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_session",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("official_id", sa.Integer(), sa.ForeignKey("official.id"), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_web_session_official_id", "web_session", ["official_id"])


def downgrade() -> None:
    op.drop_index("ix_web_session_official_id", "web_session")
    op.drop_table("web_session")
