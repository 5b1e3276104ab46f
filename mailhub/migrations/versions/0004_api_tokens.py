"""API tokens: bearer tokens of officials for the JSON API (only their SHA-256 is stored).

Revision ID: 0004_api_tokens
Revises: 0003_meetings
Create Date: 2026-11-28

Written with plain SQLAlchemy types as in 0001 and 0003; matches
mailhub/models.py ApiToken (tests compare the migrated schema with the models).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_api_tokens"
down_revision = "0003_meetings"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('official_id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=255), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('last_used_at', UTC_DATETIME, nullable=True),
    sa.Column('expires_at', UTC_DATETIME, nullable=True),
    sa.Column('revoked_at', UTC_DATETIME, nullable=True),
    sa.ForeignKeyConstraint(['official_id'], ['official.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index('ix_api_token_official_id', 'api_token', ['official_id'], unique=False)


def downgrade() -> None:
    op.drop_table('api_token')  # drops its index with it
