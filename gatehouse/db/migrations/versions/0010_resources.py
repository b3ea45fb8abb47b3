"""resources: the directory of services for release (HSDS organizations and services, facets, the search index),
job offers, and release plans with their supporters and who looked

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('resources_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('employer', sa.String(length=255), nullable=False),
    sa.Column('region', sa.String(length=128), nullable=False),
    sa.Column('city', sa.String(length=128), nullable=False),
    sa.Column('contract', sa.String(length=32), nullable=False),
    sa.Column('hours', sa.String(length=32), nullable=False),
    sa.Column('fair_chance', sa.Boolean(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('how_to_apply', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('closes_on', sa.Date(), nullable=False),
    sa.Column('posted_by', sa.String(length=64), nullable=False),
    sa.Column('posted_at', sa.DateTime(), nullable=False),
    sa.Column('withdrawn_by', sa.String(length=64), nullable=False),
    sa.Column('withdrawn_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resources_jobs'))
    )
    with op.batch_alter_table('resources_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resources_jobs_closes_on'), ['closes_on'], unique=False)

    op.create_table('resources_organizations',
    sa.Column('id', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=False),
    sa.Column('website', sa.String(length=1024), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resources_organizations'))
    )
    op.create_table('resources_services',
    sa.Column('id', sa.String(length=100), nullable=False),
    sa.Column('organization_id', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('alternate_name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('url', sa.String(length=1024), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('application_process', sa.Text(), nullable=False),
    sa.Column('fees_description', sa.Text(), nullable=False),
    sa.Column('eligibility_description', sa.Text(), nullable=False),
    sa.Column('minimum_age', sa.Integer(), nullable=True),
    sa.Column('maximum_age', sa.Integer(), nullable=True),
    sa.Column('assured_date', sa.Date(), nullable=True),
    sa.Column('assurer_email', sa.String(length=255), nullable=False),
    sa.Column('last_modified', sa.DateTime(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('website', sa.String(length=16), nullable=False),
    sa.Column('form_paths', sa.JSON(), nullable=False),
    sa.Column('website_proposals', sa.JSON(), nullable=False),
    sa.Column('link_state', sa.String(length=16), nullable=False),
    sa.Column('link_checked_at', sa.DateTime(), nullable=True),
    sa.Column('link_detail', sa.Text(), nullable=False),
    sa.Column('imported_at', sa.DateTime(), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['resources_organizations.id'], name=op.f('fk_resources_services_organization_id_resources_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resources_services'))
    )
    with op.batch_alter_table('resources_services', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resources_services_assured_date'), ['assured_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_resources_services_organization_id'), ['organization_id'], unique=False)

    op.create_table('resources_facets',
    sa.Column('service_id', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=128), nullable=False),
    sa.Column('label', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['resources_services.id'], name=op.f('fk_resources_facets_service_id_resources_services'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('service_id', 'kind', 'value', name=op.f('pk_resources_facets'))
    )
    with op.batch_alter_table('resources_facets', schema=None) as batch_op:
        batch_op.create_index('ix_resources_facets_kind_value', ['kind', 'value'], unique=False)

    op.create_table('resources_plan_supporters',
    sa.Column('inmate_id', sa.Integer(), nullable=False),
    sa.Column('staff', sa.String(length=64), nullable=False),
    sa.Column('added_by', sa.String(length=64), nullable=False),
    sa.Column('added_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['inmate_id'], ['inmates.id'], name=op.f('fk_resources_plan_supporters_inmate_id_inmates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('inmate_id', 'staff', name=op.f('pk_resources_plan_supporters'))
    )
    op.create_table('resources_plan_views',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inmate_id', sa.Integer(), nullable=False),
    sa.Column('staff', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('what', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['inmate_id'], ['inmates.id'], name=op.f('fk_resources_plan_views_inmate_id_inmates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resources_plan_views'))
    )
    with op.batch_alter_table('resources_plan_views', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resources_plan_views_inmate_id'), ['inmate_id'], unique=False)

    op.create_table('resources_plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inmate_id', sa.Integer(), nullable=False),
    sa.Column('release_date', sa.Date(), nullable=True),
    sa.Column('release_region', sa.String(length=128), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['inmate_id'], ['inmates.id'], name=op.f('fk_resources_plans_inmate_id_inmates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resources_plans')),
    sa.UniqueConstraint('inmate_id', name=op.f('uq_resources_plans_inmate_id'))
    )
    op.create_table('resources_plan_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('ref', sa.String(length=100), nullable=False),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('added_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['resources_plans.id'], name=op.f('fk_resources_plan_items_plan_id_resources_plans'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resources_plan_items'))
    )
    with op.batch_alter_table('resources_plan_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resources_plan_items_plan_id'), ['plan_id'], unique=False)
        batch_op.create_index('uq_resources_plan_items_plan_kind_ref', ['plan_id', 'kind', 'ref'], unique=True)
    if op.get_bind().dialect.name == "sqlite":
        # Stems made by the portal's own stemmers, one row per service and portal language.
        op.execute("CREATE VIRTUAL TABLE resources_search USING fts5(service_id UNINDEXED, language UNINDEXED, "
                   "name, body, tokenize = 'unicode61 remove_diacritics 2')")
    else:
        op.execute("CREATE TABLE resources_search (service_id VARCHAR(100) NOT NULL REFERENCES resources_services(id) "
                   "ON DELETE CASCADE, config REGCONFIG NOT NULL, vector TSVECTOR NOT NULL, "
                   "PRIMARY KEY (service_id, config))")
        op.execute("CREATE INDEX ix_resources_search_vector ON resources_search USING GIN (vector)")


def downgrade() -> None:
    op.execute("DROP TABLE resources_search")
    with op.batch_alter_table('resources_plan_items', schema=None) as batch_op:
        batch_op.drop_index('uq_resources_plan_items_plan_kind_ref')
        batch_op.drop_index(batch_op.f('ix_resources_plan_items_plan_id'))

    op.drop_table('resources_plan_items')
    op.drop_table('resources_plans')
    with op.batch_alter_table('resources_plan_views', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_resources_plan_views_inmate_id'))

    op.drop_table('resources_plan_views')
    op.drop_table('resources_plan_supporters')
    with op.batch_alter_table('resources_facets', schema=None) as batch_op:
        batch_op.drop_index('ix_resources_facets_kind_value')

    op.drop_table('resources_facets')
    with op.batch_alter_table('resources_services', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_resources_services_organization_id'))
        batch_op.drop_index(batch_op.f('ix_resources_services_assured_date'))

    op.drop_table('resources_services')
    op.drop_table('resources_organizations')
    with op.batch_alter_table('resources_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_resources_jobs_closes_on'))

    op.drop_table('resources_jobs')
