"""learning: courses and versions, media, exclusions, enrolments, progress, attempts, answers, certificates

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('learning_courses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('eligible_groups', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_learning_courses')),
    sa.UniqueConstraint('slug', name=op.f('uq_learning_courses_slug'))
    )
    op.create_table('learning_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('level', sa.String(length=64), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('content', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('published_at', sa.DateTime(), nullable=True),
    sa.Column('published_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['learning_courses.id'], name=op.f('fk_learning_versions_course_id_learning_courses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_learning_versions')),
    sa.UniqueConstraint('course_id', 'number', name=op.f('uq_learning_versions_course_id_number'))
    )
    with op.batch_alter_table('learning_versions', schema=None) as batch_op:
        batch_op.create_index('uq_learning_versions_published', ['course_id'], unique=True, sqlite_where=sa.text("status = 'published'"), postgresql_where=sa.text("status = 'published'"))

    op.create_table('learning_enrolments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('inmate_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('ends_at', sa.DateTime(), nullable=True),
    sa.Column('requested_at', sa.DateTime(), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('decided_by', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('last_lesson', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['learning_courses.id'], name=op.f('fk_learning_enrolments_course_id_learning_courses'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['inmate_id'], ['inmates.id'], name=op.f('fk_learning_enrolments_inmate_id_inmates'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['learning_versions.id'], name=op.f('fk_learning_enrolments_version_id_learning_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_learning_enrolments'))
    )
    with op.batch_alter_table('learning_enrolments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_learning_enrolments_inmate_id'), ['inmate_id'], unique=False)
        batch_op.create_index('ix_learning_enrolments_status_inmate', ['status', 'inmate_id'], unique=False)
        batch_op.create_index('uq_learning_enrolments_open', ['course_id', 'inmate_id'], unique=True, sqlite_where=sa.text("status IN ('requested', 'active')"), postgresql_where=sa.text("status IN ('requested', 'active')"))

    op.create_table('learning_exclusions',
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('inmate_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['learning_courses.id'], name=op.f('fk_learning_exclusions_course_id_learning_courses'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['inmate_id'], ['inmates.id'], name=op.f('fk_learning_exclusions_inmate_id_inmates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('course_id', 'inmate_id', name=op.f('pk_learning_exclusions'))
    )
    op.create_table('learning_media',
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['learning_versions.id'], name=op.f('fk_learning_media_version_id_learning_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('version_id', 'path', name=op.f('pk_learning_media'))
    )
    op.create_table('learning_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('enrolment_id', sa.Integer(), nullable=False),
    sa.Column('quiz', sa.String(length=255), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('questions', sa.JSON(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.ForeignKeyConstraint(['enrolment_id'], ['learning_enrolments.id'], name=op.f('fk_learning_attempts_enrolment_id_learning_enrolments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_learning_attempts')),
    sa.UniqueConstraint('enrolment_id', 'quiz', 'number', name=op.f('uq_learning_attempts_enrolment_id_quiz_number')),
    sa.UniqueConstraint('token', name=op.f('uq_learning_attempts_token'))
    )
    with op.batch_alter_table('learning_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_learning_attempts_enrolment_id'), ['enrolment_id'], unique=False)

    op.create_table('learning_certificates',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('enrolment_id', sa.Integer(), nullable=False),
    sa.Column('short_code', sa.String(length=32), nullable=False),
    sa.Column('signed', sa.LargeBinary(), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_by', sa.String(length=64), nullable=False),
    sa.Column('revoke_reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['enrolment_id'], ['learning_enrolments.id'], name=op.f('fk_learning_certificates_enrolment_id_learning_enrolments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_learning_certificates')),
    sa.UniqueConstraint('enrolment_id', name=op.f('uq_learning_certificates_enrolment_id'))
    )
    with op.batch_alter_table('learning_certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_learning_certificates_short_code'), ['short_code'], unique=False)

    op.create_table('learning_progress',
    sa.Column('enrolment_id', sa.Integer(), nullable=False),
    sa.Column('lesson', sa.String(length=255), nullable=False),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.Column('active_seconds', sa.Integer(), nullable=False),
    sa.Column('last_activity_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['enrolment_id'], ['learning_enrolments.id'], name=op.f('fk_learning_progress_enrolment_id_learning_enrolments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('enrolment_id', 'lesson', name=op.f('pk_learning_progress'))
    )
    op.create_table('learning_answers',
    sa.Column('attempt_id', sa.Integer(), nullable=False),
    sa.Column('question', sa.String(length=64), nullable=False),
    sa.Column('given', sa.JSON(), nullable=False),
    sa.Column('correct', sa.Boolean(), nullable=False),
    sa.Column('feedback', sa.String(length=16), nullable=False),
    sa.Column('answered_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['learning_attempts.id'], name=op.f('fk_learning_answers_attempt_id_learning_attempts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('attempt_id', 'question', name=op.f('pk_learning_answers'))
    )


def downgrade() -> None:
    op.drop_table('learning_answers')
    op.drop_table('learning_progress')
    with op.batch_alter_table('learning_certificates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_learning_certificates_short_code'))

    op.drop_table('learning_certificates')
    with op.batch_alter_table('learning_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_learning_attempts_enrolment_id'))

    op.drop_table('learning_attempts')
    op.drop_table('learning_media')
    op.drop_table('learning_exclusions')
    with op.batch_alter_table('learning_enrolments', schema=None) as batch_op:
        batch_op.drop_index('uq_learning_enrolments_open', sqlite_where=sa.text("status IN ('requested', 'active')"), postgresql_where=sa.text("status IN ('requested', 'active')"))
        batch_op.drop_index('ix_learning_enrolments_status_inmate')
        batch_op.drop_index(batch_op.f('ix_learning_enrolments_inmate_id'))

    op.drop_table('learning_enrolments')
    with op.batch_alter_table('learning_versions', schema=None) as batch_op:
        batch_op.drop_index('uq_learning_versions_published', sqlite_where=sa.text("status = 'published'"), postgresql_where=sa.text("status = 'published'"))

    op.drop_table('learning_versions')
    op.drop_table('learning_courses')
