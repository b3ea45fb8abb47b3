"""audit review indexes and alerts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('window_start', sa.DateTime(), nullable=False),
    sa.Column('window_end', sa.DateTime(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('raised_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_alerts')),
    sa.UniqueConstraint('rule', 'actor', 'window_start', name=op.f('uq_audit_alerts_rule_actor_window_start'))
    )
    with op.batch_alter_table('audit_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_alerts_raised_at'), ['raised_at'], unique=False)
    # Review screens page newest first on (at, id) and filter by terminal or host within a time range.
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.create_index('ix_audit_records_at_id', ['at', 'id'], unique=False)
        batch_op.create_index('ix_audit_records_terminal_at', ['terminal', 'at'], unique=False)
        batch_op.create_index('ix_audit_records_host_at', ['host', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_records_host_at')
        batch_op.drop_index('ix_audit_records_terminal_at')
        batch_op.drop_index('ix_audit_records_at_id')
    with op.batch_alter_table('audit_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_alerts_raised_at'))
    op.drop_table('audit_alerts')
