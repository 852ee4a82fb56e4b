"""authors and books

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "al_author",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "al_book",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("author_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["al_author.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_al_book_author_id"), "al_book", ["author_id"], unique=False)


def downgrade():
    op.drop_index(op.f("ix_al_book_author_id"), table_name="al_book")
    op.drop_table("al_book")
    op.drop_table("al_author")
