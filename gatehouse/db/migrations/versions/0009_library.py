"""library: ZIM files on the shelf, who sees each, hidden articles

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('library_libraries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('article_count', sa.Integer(), nullable=False),
    sa.Column('groups', sa.JSON(), nullable=False),
    sa.Column('added_by', sa.String(length=64), nullable=False),
    sa.Column('added_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_library_libraries')),
    sa.UniqueConstraint('name', name=op.f('uq_library_libraries_name'))
    )
    op.create_table('library_hidden',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('library_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('prefix', sa.Boolean(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('hidden_by', sa.String(length=64), nullable=False),
    sa.Column('hidden_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['library_id'], ['library_libraries.id'], name=op.f('fk_library_hidden_library_id_library_libraries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_library_hidden'))
    )
    op.create_index(op.f('ix_library_hidden_library_id'), 'library_hidden', ['library_id'], unique=False)
    op.create_index('uq_library_hidden_library_path', 'library_hidden', ['library_id', 'path', 'prefix'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_library_hidden_library_path', table_name='library_hidden')
    op.drop_index(op.f('ix_library_hidden_library_id'), table_name='library_hidden')
    op.drop_table('library_hidden')
    op.drop_table('library_libraries')
