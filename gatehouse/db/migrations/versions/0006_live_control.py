"""live control: disabled terminals, lockdowns, control events

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('terminals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disabled_reason', sa.String(length=255), nullable=False, server_default=''))
    op.create_table('lockdowns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('facility_id', sa.Integer(), nullable=False),
    sa.Column('unit', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('started_by', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('lifted_by', sa.String(length=64), nullable=False),
    sa.Column('lifted_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['facility_id'], ['facilities.id'], name=op.f('fk_lockdowns_facility_id_facilities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lockdowns'))
    )
    with op.batch_alter_table('lockdowns', schema=None) as batch_op:
        batch_op.create_index('uq_lockdowns_active_scope', ['facility_id', 'unit'], unique=True,
                              sqlite_where=sa.text('lifted_at IS NULL'), postgresql_where=sa.text('lifted_at IS NULL'))
    op.create_table('control_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_control_events'))
    )


def downgrade() -> None:
    op.drop_table('control_events')
    with op.batch_alter_table('lockdowns', schema=None) as batch_op:
        batch_op.drop_index('uq_lockdowns_active_scope')
    op.drop_table('lockdowns')
    with op.batch_alter_table('terminals', schema=None) as batch_op:
        batch_op.drop_column('disabled_reason')
