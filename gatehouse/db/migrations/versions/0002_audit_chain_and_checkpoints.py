"""audit chain and checkpoints

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('node', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('at', sa.String(length=40), nullable=False),
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.Column('signature', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_checkpoints'))
    )
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.create_index('uq_audit_checkpoints_node_kind_seq', ['node', 'kind', 'seq'], unique=True)

    # Records written before the chain existed keep their place as node "legacy", numbered by id, unchained.
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('node', sa.String(length=64), nullable=False, server_default='legacy'))
        batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=False, server_default=''))
    op.execute("UPDATE audit_records SET seq = id")
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.create_index('uq_audit_records_node_seq', ['node', 'seq'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.drop_index('uq_audit_records_node_seq')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('seq')
        batch_op.drop_column('node')

    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.drop_index('uq_audit_checkpoints_node_kind_seq')

    op.drop_table('audit_checkpoints')

