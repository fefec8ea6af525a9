"""enforcement decisions, legal reviews, decision rules, commitments (issue 15)

Revision ID: e8b4c2d7a9f1
Revises: c9d1e7a3f5b2
Create Date: 2026-12-03 07:25:00

"""
import sqlalchemy as sa
from alembic import op

import server.db_types

# revision identifiers, used by Alembic.
revision = 'e8b4c2d7a9f1'
down_revision = 'c9d1e7a3f5b2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('decision_rule',
    sa.Column('department_id', sa.Uuid(), nullable=False),
    sa.Column('major_penalty_above_yuan', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('circumstances', sa.JSON(), nullable=False),
    sa.Column('updated_by_id', sa.Uuid(), nullable=True),
    sa.Column('updated_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_decision_rule_department_id_department')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['app_user.id'], name=op.f('fk_decision_rule_updated_by_id_app_user')),
    sa.PrimaryKeyConstraint('department_id', name=op.f('pk_decision_rule'))
    )
    op.create_table('commitment',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('enterprise_id', sa.Uuid(), nullable=False),
    sa.Column('department_id', sa.Uuid(), nullable=False),
    sa.Column('matter', sa.String(length=200), nullable=False),
    sa.Column('promise', sa.Text(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('task_id', sa.Uuid(), nullable=True),
    sa.Column('result', sa.Enum('true', 'untrue', name='commitment_result', native_enum=False, create_constraint=True, length=20), nullable=True),
    sa.Column('result_note', sa.Text(), nullable=True),
    sa.Column('checked_on', sa.Date(), nullable=True),
    sa.Column('result_by_id', sa.Uuid(), nullable=True),
    sa.Column('created_by_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['app_user.id'], name=op.f('fk_commitment_created_by_id_app_user')),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_commitment_department_id_department')),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprise.id'], name=op.f('fk_commitment_enterprise_id_enterprise')),
    sa.ForeignKeyConstraint(['result_by_id'], ['app_user.id'], name=op.f('fk_commitment_result_by_id_app_user')),
    sa.ForeignKeyConstraint(['task_id'], ['inspection_task.id'], name=op.f('fk_commitment_task_id_inspection_task')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commitment'))
    )
    with op.batch_alter_table('commitment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commitment_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_commitment_enterprise_id'), ['enterprise_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_commitment_task_id'), ['task_id'], unique=False)

    op.create_table('enforcement_decision',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('inspection_id', sa.Uuid(), nullable=False),
    sa.Column('task_id', sa.Uuid(), nullable=False),
    sa.Column('department_id', sa.Uuid(), nullable=False),
    sa.Column('enterprise_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.Enum('no_irregularity', 'rectify_order', 'penalty', 'seizure', 'transfer_judicial', 'licensing', name='enforcement_decision_kind', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('conclusion', sa.Text(), nullable=False),
    sa.Column('legal_basis', sa.Text(), nullable=False),
    sa.Column('rectify_by', sa.Date(), nullable=True),
    sa.Column('amount_yuan', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('circumstances', sa.JSON(), nullable=False),
    sa.Column('decided_on', sa.Date(), nullable=True),
    sa.Column('served_on', sa.Date(), nullable=True),
    sa.Column('major', sa.Boolean(), nullable=False),
    sa.Column('major_reasons', sa.JSON(), nullable=False),
    sa.Column('legal_review_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.Enum('draft', 'made', 'served', name='enforcement_decision_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('created_by_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('made_by_id', sa.Uuid(), nullable=True),
    sa.Column('made_at', server.db_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('served_by_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['app_user.id'], name=op.f('fk_enforcement_decision_created_by_id_app_user')),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_enforcement_decision_department_id_department')),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprise.id'], name=op.f('fk_enforcement_decision_enterprise_id_enterprise')),
    sa.ForeignKeyConstraint(['made_by_id'], ['app_user.id'], name=op.f('fk_enforcement_decision_made_by_id_app_user')),
    sa.ForeignKeyConstraint(['served_by_id'], ['app_user.id'], name=op.f('fk_enforcement_decision_served_by_id_app_user')),
    sa.ForeignKeyConstraint(['task_id'], ['inspection_task.id'], name=op.f('fk_enforcement_decision_task_id_inspection_task')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enforcement_decision')),
    sa.UniqueConstraint('inspection_id', 'department_id', name='uq_decision_inspection_department')
    )
    with op.batch_alter_table('enforcement_decision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enforcement_decision_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_enforcement_decision_enterprise_id'), ['enterprise_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_enforcement_decision_inspection_id'), ['inspection_id'], unique=False)
        batch_op.create_index('ix_enforcement_decision_status_major', ['status', 'major'], unique=False)
        batch_op.create_index(batch_op.f('ix_enforcement_decision_task_id'), ['task_id'], unique=False)

    op.create_table('legal_review',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('decision_id', sa.Uuid(), nullable=False),
    sa.Column('reviewer_id', sa.Uuid(), nullable=False),
    sa.Column('opinion', sa.Text(), nullable=False),
    sa.Column('outcome', sa.Enum('approved', 'rejected', name='legal_review_outcome', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('reviewed_on', sa.Date(), nullable=False),
    sa.Column('created_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['decision_id'], ['enforcement_decision.id'], name=op.f('fk_legal_review_decision_id_enforcement_decision')),
    sa.ForeignKeyConstraint(['reviewer_id'], ['app_user.id'], name=op.f('fk_legal_review_reviewer_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_legal_review'))
    )
    with op.batch_alter_table('legal_review', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_legal_review_decision_id'), ['decision_id'], unique=False)



def downgrade():
    with op.batch_alter_table('legal_review', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_legal_review_decision_id'))

    op.drop_table('legal_review')
    with op.batch_alter_table('enforcement_decision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enforcement_decision_task_id'))
        batch_op.drop_index('ix_enforcement_decision_status_major')
        batch_op.drop_index(batch_op.f('ix_enforcement_decision_inspection_id'))
        batch_op.drop_index(batch_op.f('ix_enforcement_decision_enterprise_id'))
        batch_op.drop_index(batch_op.f('ix_enforcement_decision_department_id'))

    op.drop_table('enforcement_decision')
    with op.batch_alter_table('commitment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commitment_task_id'))
        batch_op.drop_index(batch_op.f('ix_commitment_enterprise_id'))
        batch_op.drop_index(batch_op.f('ix_commitment_department_id'))

    op.drop_table('commitment')
    op.drop_table('decision_rule')
