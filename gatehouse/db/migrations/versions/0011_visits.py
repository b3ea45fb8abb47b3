"""visits: visitors and their logins, approved lists, no-contact orders, booths and hours, visits, the
claims that no two visits may share (an exclusion constraint on PostgreSQL, a trigger on SQLite) and the mail
outbox

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('visits_booths',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('unit', sa.String(length=64), nullable=False),
    sa.Column('terminal', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visits_booths')),
    sa.UniqueConstraint('name', name=op.f('uq_visits_booths_name'))
    )
    op.create_table('visits_closed_days',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visits_closed_days')),
    sa.UniqueConstraint('unit', 'day', name=op.f('uq_visits_closed_days_unit_day'))
    )
    op.create_table('visits_visitors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('totp_secret', sa.String(length=64), nullable=True),
    sa.Column('totp_last_step', sa.Integer(), nullable=True),
    sa.Column('email_token', sa.String(length=64), nullable=True),
    sa.Column('email_token_expires', sa.DateTime(), nullable=True),
    sa.Column('email_confirmed_at', sa.DateTime(), nullable=True),
    sa.Column('verified_at', sa.DateTime(), nullable=True),
    sa.Column('verified_by', sa.String(length=64), nullable=False),
    sa.Column('document', sa.String(length=255), nullable=False),
    sa.Column('lawyer', sa.Boolean(), nullable=False),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('suspended_reason', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visits_visitors')),
    sa.UniqueConstraint('email', name=op.f('uq_visits_visitors_email'))
    )
    op.create_table('visits_hours',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit', sa.String(length=64), nullable=False),
    sa.Column('booth_id', sa.Integer(), nullable=True),
    sa.Column('windows', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['booth_id'], ['visits_booths.id'], name=op.f('fk_visits_hours_booth_id_visits_booths'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visits_hours')),
    sa.UniqueConstraint('unit', 'booth_id', name=op.f('uq_visits_hours_unit_booth_id'))
    )
    op.create_table('visits_visitor_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('visitor_id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.Column('totp_done', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['visitor_id'], ['visits_visitors.id'], name=op.f('fk_visits_visitor_sessions_visitor_id_visits_visitors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visits_visitor_sessions')),
    sa.UniqueConstraint('token', name=op.f('uq_visits_visitor_sessions_token'))
    )
    with op.batch_alter_table('visits_visitor_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visits_visitor_sessions_visitor_id'), ['visitor_id'], unique=False)

    op.create_table('visits_list',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inmate_id', sa.Integer(), nullable=False),
    sa.Column('visitor_id', sa.Integer(), nullable=False),
    sa.Column('relationship', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('proposed_by', sa.String(length=64), nullable=False),
    sa.Column('proposed_at', sa.DateTime(), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['inmate_id'], ['inmates.id'], name=op.f('fk_visits_list_inmate_id_inmates'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['visitor_id'], ['visits_visitors.id'], name=op.f('fk_visits_list_visitor_id_visits_visitors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visits_list')),
    sa.UniqueConstraint('inmate_id', 'visitor_id', name=op.f('uq_visits_list_inmate_id_visitor_id'))
    )
    with op.batch_alter_table('visits_list', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visits_list_visitor_id'), ['visitor_id'], unique=False)

    op.create_table('visits_no_contact',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inmate_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('made_by', sa.String(length=64), nullable=False),
    sa.Column('made_at', sa.DateTime(), nullable=False),
    sa.Column('lifted_by', sa.String(length=64), nullable=False),
    sa.Column('lifted_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['inmate_id'], ['inmates.id'], name=op.f('fk_visits_no_contact_inmate_id_inmates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visits_no_contact'))
    )
    with op.batch_alter_table('visits_no_contact', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visits_no_contact_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_visits_no_contact_inmate_id'), ['inmate_id'], unique=False)

    op.create_table('visits_visits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inmate_id', sa.Integer(), nullable=False),
    sa.Column('booth_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('ends_at', sa.DateTime(), nullable=False),
    sa.Column('visit_class', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('requested_at', sa.DateTime(), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('supervisor', sa.String(length=64), nullable=False),
    sa.Column('recorded', sa.Boolean(), nullable=False),
    sa.Column('closed_by', sa.String(length=64), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('close_reason', sa.Text(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['booth_id'], ['visits_booths.id'], name=op.f('fk_visits_visits_booth_id_visits_booths')),
    sa.ForeignKeyConstraint(['inmate_id'], ['inmates.id'], name=op.f('fk_visits_visits_inmate_id_inmates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visits_visits'))
    )
    with op.batch_alter_table('visits_visits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visits_visits_inmate_id'), ['inmate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_visits_visits_starts_at'), ['starts_at'], unique=False)

    op.create_table('visits_claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=False),
    sa.Column('resource', sa.String(length=96), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('ends_at', sa.DateTime(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['visit_id'], ['visits_visits.id'], name=op.f('fk_visits_claims_visit_id_visits_visits'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visits_claims'))
    )
    with op.batch_alter_table('visits_claims', schema=None) as batch_op:
        batch_op.create_index('ix_visits_claims_resource_starts_at', ['resource', 'starts_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_visits_claims_visit_id'), ['visit_id'], unique=False)

    op.create_table('visits_guests',
    sa.Column('visit_id', sa.Integer(), nullable=False),
    sa.Column('visitor_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['visit_id'], ['visits_visits.id'], name=op.f('fk_visits_guests_visit_id_visits_visits'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['visitor_id'], ['visits_visitors.id'], name=op.f('fk_visits_guests_visitor_id_visits_visitors')),
    sa.PrimaryKeyConstraint('visit_id', 'visitor_id', name=op.f('pk_visits_guests'))
    )
    with op.batch_alter_table('visits_guests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visits_guests_visitor_id'), ['visitor_id'], unique=False)

    op.create_table('visits_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('recipient', sa.String(length=255), nullable=False),
    sa.Column('visitor_id', sa.Integer(), nullable=True),
    sa.Column('visit_id', sa.Integer(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_try_at', sa.DateTime(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['visit_id'], ['visits_visits.id'], name=op.f('fk_visits_outbox_visit_id_visits_visits'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['visitor_id'], ['visits_visitors.id'], name=op.f('fk_visits_outbox_visitor_id_visits_visitors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visits_outbox'))
    )
    with op.batch_alter_table('visits_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_visits_outbox_unsent', ['next_try_at'], unique=False, sqlite_where=sa.text('sent_at IS NULL'), postgresql_where=sa.text('sent_at IS NULL'))

    no_overlap()


def no_overlap() -> None:
    """Two live claims on one thing may not overlap: the database's last word on double booking."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute("ALTER TABLE visits_claims ADD CONSTRAINT visits_claims_overlap EXCLUDE USING gist "
                   "(resource WITH =, tsrange(starts_at, ends_at) WITH &&) WHERE (active)")
        return
    for when in ("INSERT", "UPDATE"):
        op.execute(f"""CREATE TRIGGER visits_claims_overlap_{when.lower()} BEFORE {when} ON visits_claims
            WHEN NEW.active BEGIN
                SELECT RAISE(ABORT, 'visits_claims_overlap') WHERE EXISTS (
                    SELECT 1 FROM visits_claims WHERE resource = NEW.resource AND active AND id IS NOT NEW.id
                    AND starts_at < NEW.ends_at AND NEW.starts_at < ends_at);
            END""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS visits_claims_overlap_insert")
        op.execute("DROP TRIGGER IF EXISTS visits_claims_overlap_update")
    with op.batch_alter_table('visits_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_visits_outbox_unsent', sqlite_where=sa.text('sent_at IS NULL'), postgresql_where=sa.text('sent_at IS NULL'))

    op.drop_table('visits_outbox')
    op.drop_table('visits_guests')
    with op.batch_alter_table('visits_claims', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visits_claims_visit_id'))
        batch_op.drop_index('ix_visits_claims_resource_starts_at')

    op.drop_table('visits_claims')
    with op.batch_alter_table('visits_visits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visits_visits_starts_at'))
        batch_op.drop_index(batch_op.f('ix_visits_visits_inmate_id'))

    op.drop_table('visits_visits')
    with op.batch_alter_table('visits_no_contact', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visits_no_contact_inmate_id'))
        batch_op.drop_index(batch_op.f('ix_visits_no_contact_email'))

    op.drop_table('visits_no_contact')
    with op.batch_alter_table('visits_list', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visits_list_visitor_id'))

    op.drop_table('visits_list')
    with op.batch_alter_table('visits_visitor_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visits_visitor_sessions_visitor_id'))

    op.drop_table('visits_visitor_sessions')
    op.drop_table('visits_hours')
    op.drop_table('visits_visitors')
    op.drop_table('visits_closed_days')
    op.drop_table('visits_booths')
