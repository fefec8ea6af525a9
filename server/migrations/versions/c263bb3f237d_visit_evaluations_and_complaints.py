"""the enterprise's evaluations of visits (every version) and complaints with their follow-ups (issue 18)

Revision ID: c263bb3f237d
Revises: d8e2a6c4f1b9
Create Date: 2026-12-03 10:00:00

"""
import sqlalchemy as sa
from alembic import op

import server.db_types

# revision identifiers, used by Alembic.
revision = 'c263bb3f237d'
down_revision = 'd8e2a6c4f1b9'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('complaint',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('task_id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Uuid(), nullable=False),
    sa.Column('submitted_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('contact', sa.String(length=100), nullable=True),
    sa.Column('status', sa.Enum('open', 'closed', name='follow_up_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('reply', sa.Text(), nullable=True),
    sa.Column('replied_at', server.db_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('replied_by_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_complaint_department_id_department')),
    sa.ForeignKeyConstraint(['replied_by_id'], ['app_user.id'], name=op.f('fk_complaint_replied_by_id_app_user')),
    sa.ForeignKeyConstraint(['task_id'], ['inspection_task.id'], name=op.f('fk_complaint_task_id_inspection_task')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_complaint')),
    sa.UniqueConstraint('task_id', 'number', name='uq_complaint_task_number')
    )
    with op.batch_alter_table('complaint', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_complaint_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaint_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaint_submitted_at'), ['submitted_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaint_task_id'), ['task_id'], unique=False)

    op.create_table('visit_evaluation',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('task_id', sa.Uuid(), nullable=False),
    sa.Column('department_id', sa.Uuid(), nullable=False),
    sa.Column('first_submitted_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('current_version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_visit_evaluation_department_id_department')),
    sa.ForeignKeyConstraint(['task_id'], ['inspection_task.id'], name=op.f('fk_visit_evaluation_task_id_inspection_task')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visit_evaluation')),
    sa.UniqueConstraint('task_id', name=op.f('uq_visit_evaluation_task_id'))
    )
    with op.batch_alter_table('visit_evaluation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visit_evaluation_department_id'), ['department_id'], unique=False)

    op.create_table('evaluation_version',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('evaluation_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('submitted_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('certificate_shown', sa.Boolean(), nullable=False),
    sa.Column('courtesy', sa.Enum('satisfied', 'basically_satisfied', 'dissatisfied', name='evaluation_courtesy', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('disturbed_production', sa.Boolean(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['evaluation_id'], ['visit_evaluation.id'], name=op.f('fk_evaluation_version_evaluation_id_visit_evaluation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluation_version')),
    sa.UniqueConstraint('evaluation_id', 'version', name='uq_evaluation_version')
    )
    with op.batch_alter_table('evaluation_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_version_evaluation_id'), ['evaluation_id'], unique=False)



def downgrade():
    with op.batch_alter_table('evaluation_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_version_evaluation_id'))

    op.drop_table('evaluation_version')
    with op.batch_alter_table('visit_evaluation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visit_evaluation_department_id'))

    op.drop_table('visit_evaluation')
    with op.batch_alter_table('complaint', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_complaint_task_id'))
        batch_op.drop_index(batch_op.f('ix_complaint_submitted_at'))
        batch_op.drop_index(batch_op.f('ix_complaint_status'))
        batch_op.drop_index(batch_op.f('ix_complaint_department_id'))

    op.drop_table('complaint')
