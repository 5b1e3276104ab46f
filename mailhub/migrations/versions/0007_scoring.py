"""HR scoring: employment dates, the ledger's monthly rollup, deductions, unit registers and
closed periods.

Revision ID: 0007_scoring
Revises: 0006_ledger_nature
Create Date: 2026-11-21

Matches mailhub/models.py (tests compare the migrated schema with the models).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_scoring"
down_revision = "0006_ledger_nature"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "official_assignment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("official_id", sa.Integer(), sa.ForeignKey("official.id"), nullable=False),
        sa.Column("unit_code", sa.String(64), sa.ForeignKey("unit.code"), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("end", sa.Date(), nullable=True),
    )
    op.create_index("ix_official_assignment_official_id", "official_assignment", ["official_id"])
    op.create_table(
        "usage_month",
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("official_email", sa.String(320), primary_key=True),
        sa.Column("days", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "usage_rollup",
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("through", sa.Date(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("rolled_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "score_deduction",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("official_email", sa.String(320), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(1000), nullable=False),
        sa.Column("recorded_by", sa.String(320), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_score_deduction_official_email", "score_deduction", ["official_email"])
    op.create_table(
        "unit_register",
        sa.Column("unit_code", sa.String(64), sa.ForeignKey("unit.code"), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("issued", sa.Integer(), nullable=False),
        sa.Column("issued_electronic", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "score_period",
        sa.Column("label", sa.String(32), primary_key=True),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("end", sa.Date(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.String(320), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for table in ("score_period", "unit_register", "score_deduction", "usage_rollup", "usage_month"):
        op.drop_table(table)
    op.drop_index("ix_official_assignment_official_id", "official_assignment")
    op.drop_table("official_assignment")
