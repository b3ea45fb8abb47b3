"""curation: inmates' requests for sites, proposals with four eyes, page checks; where a curated rule came from

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('curation_page_checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.String(length=64), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('checked_at', sa.DateTime(), nullable=False),
    sa.Column('preview', sa.JSON(), nullable=False),
    sa.Column('drift', sa.JSON(), nullable=False),
    sa.Column('flagged', sa.Boolean(), nullable=False),
    sa.Column('cleared_by', sa.String(length=64), nullable=False),
    sa.Column('cleared_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_curation_page_checks'))
    )
    op.create_index(op.f('ix_curation_page_checks_flagged'), 'curation_page_checks', ['flagged'], unique=False)
    op.create_index(op.f('ix_curation_page_checks_rule_id'), 'curation_page_checks', ['rule_id'], unique=False)
    op.create_table('curation_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inmate_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('decided_by', sa.String(length=64), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['inmate_id'], ['inmates.id'], name=op.f('fk_curation_requests_inmate_id_inmates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_curation_requests'))
    )
    op.create_index(op.f('ix_curation_requests_inmate_id'), 'curation_requests', ['inmate_id'], unique=False)
    op.create_index(op.f('ix_curation_requests_status'), 'curation_requests', ['status'], unique=False)
    op.create_index('uq_curation_requests_open', 'curation_requests', ['inmate_id', 'url'], unique=True, sqlite_where=sa.text("status IN ('open', 'proposed')"), postgresql_where=sa.text("status IN ('open', 'proposed')"))
    op.create_table('curation_proposals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('rule_id', sa.String(length=64), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=True),
    sa.Column('needs', sa.String(length=16), nullable=False),
    sa.Column('why_needs', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('proposed_by', sa.String(length=64), nullable=False),
    sa.Column('proposed_at', sa.DateTime(), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['curation_requests.id'], name=op.f('fk_curation_proposals_request_id_curation_requests'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_curation_proposals'))
    )
    op.create_index(op.f('ix_curation_proposals_request_id'), 'curation_proposals', ['request_id'], unique=False)
    op.create_index(op.f('ix_curation_proposals_rule_id'), 'curation_proposals', ['rule_id'], unique=False)
    op.create_index(op.f('ix_curation_proposals_status'), 'curation_proposals', ['status'], unique=False)
    with op.batch_alter_table('policy_rules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('approved_by', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('approved_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('proposal_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('removed_by', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('removed_at', sa.DateTime(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_policy_rules_proposal_id_curation_proposals'), 'curation_proposals', ['proposal_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('policy_rules', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_policy_rules_proposal_id_curation_proposals'), type_='foreignkey')
        batch_op.drop_column('removed_at')
        batch_op.drop_column('removed_by')
        batch_op.drop_column('proposal_id')
        batch_op.drop_column('approved_at')
        batch_op.drop_column('approved_by')
    op.drop_index(op.f('ix_curation_proposals_status'), table_name='curation_proposals')
    op.drop_index(op.f('ix_curation_proposals_rule_id'), table_name='curation_proposals')
    op.drop_index(op.f('ix_curation_proposals_request_id'), table_name='curation_proposals')
    op.drop_table('curation_proposals')
    op.drop_index('uq_curation_requests_open', table_name='curation_requests', sqlite_where=sa.text("status IN ('open', 'proposed')"), postgresql_where=sa.text("status IN ('open', 'proposed')"))
    op.drop_index(op.f('ix_curation_requests_status'), table_name='curation_requests')
    op.drop_index(op.f('ix_curation_requests_inmate_id'), table_name='curation_requests')
    op.drop_table('curation_requests')
    op.drop_index(op.f('ix_curation_page_checks_rule_id'), table_name='curation_page_checks')
    op.drop_index(op.f('ix_curation_page_checks_flagged'), table_name='curation_page_checks')
    op.drop_table('curation_page_checks')
