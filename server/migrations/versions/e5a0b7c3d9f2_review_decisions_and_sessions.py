"""review decisions and sessions

Revision ID: e5a0b7c3d9f2
Revises: ef2e5101b004
Create Date: 2026-11-26 06:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

import server.db_types

# revision identifiers, used by Alembic.
revision = 'e5a0b7c3d9f2'
down_revision = 'ef2e5101b004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('review_decision',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('inspection_id', sa.Uuid(), nullable=True),
    sa.Column('task_id', sa.Uuid(), nullable=False),
    sa.Column('department_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.Enum('approve', 'return', 'legal_signoff', 'dispatch_approve', 'dispatch_reject', name='decision_kind', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('decided_by_id', sa.Uuid(), nullable=False),
    sa.Column('decided_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['decided_by_id'], ['app_user.id'], name=op.f('fk_review_decision_decided_by_id_app_user')),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_review_decision_department_id_department')),
    sa.ForeignKeyConstraint(['task_id'], ['inspection_task.id'], name=op.f('fk_review_decision_task_id_inspection_task')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_decision'))
    )
    with op.batch_alter_table('review_decision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_decision_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_review_decision_inspection_id'), ['inspection_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_review_decision_task_id'), ['task_id'], unique=False)
        batch_op.create_index('ix_review_decision_inspection_time', ['inspection_id', 'decided_at'], unique=False)

    op.create_table('review_session',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('client_address', sa.String(length=64), nullable=True),
    sa.Column('created_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', server.db_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.String(length=20), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_review_session_user_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_session')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_review_session_token_hash'))
    )
    with op.batch_alter_table('review_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_session_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('review_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_session_user_id'))
    op.drop_table('review_session')
    with op.batch_alter_table('review_decision', schema=None) as batch_op:
        batch_op.drop_index('ix_review_decision_inspection_time')
        batch_op.drop_index(batch_op.f('ix_review_decision_task_id'))
        batch_op.drop_index(batch_op.f('ix_review_decision_inspection_id'))
        batch_op.drop_index(batch_op.f('ix_review_decision_department_id'))
    op.drop_table('review_decision')
