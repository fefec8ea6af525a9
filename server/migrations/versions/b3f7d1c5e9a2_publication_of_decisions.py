"""publication of enforcement decisions: versions, corrections, withdrawals (issue 15)

Revision ID: b3f7d1c5e9a2
Revises: e8b4c2d7a9f1
Create Date: 2026-12-03 07:40:00

"""
import sqlalchemy as sa
from alembic import op

import server.db_types

# revision identifiers, used by Alembic.
revision = 'b3f7d1c5e9a2'
down_revision = 'e8b4c2d7a9f1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('publication',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('decision_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('corrects_id', sa.Uuid(), nullable=True),
    sa.Column('department_id', sa.Uuid(), nullable=False),
    sa.Column('enforcement_body', sa.String(length=200), nullable=False),
    sa.Column('enterprise_name', sa.String(length=200), nullable=False),
    sa.Column('credit_code', sa.String(length=18), nullable=False),
    sa.Column('inspection_kind', sa.String(length=40), nullable=False),
    sa.Column('decision_kind', sa.String(length=40), nullable=False),
    sa.Column('conclusion', sa.Text(), nullable=False),
    sa.Column('decided_on', sa.Date(), nullable=False),
    sa.Column('deadline', sa.Date(), nullable=True),
    sa.Column('published_on', sa.Date(), nullable=False),
    sa.Column('published_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('correction_note', sa.Text(), nullable=True),
    sa.Column('state', sa.Enum('published', 'corrected', 'withdrawn', name='publication_state', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('withdrawn_at', server.db_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_on', sa.Date(), nullable=True),
    sa.Column('withdrawal_reason', sa.Text(), nullable=True),
    sa.Column('published_by_id', sa.Uuid(), nullable=True),
    sa.Column('withdrawn_by_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['corrects_id'], ['publication.id'], name=op.f('fk_publication_corrects_id_publication')),
    sa.ForeignKeyConstraint(['decision_id'], ['enforcement_decision.id'], name=op.f('fk_publication_decision_id_enforcement_decision')),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_publication_department_id_department')),
    sa.ForeignKeyConstraint(['published_by_id'], ['app_user.id'], name=op.f('fk_publication_published_by_id_app_user')),
    sa.ForeignKeyConstraint(['withdrawn_by_id'], ['app_user.id'], name=op.f('fk_publication_withdrawn_by_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_publication')),
    sa.UniqueConstraint('decision_id', 'version', name='uq_publication_decision_version')
    )
    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_publication_credit_code'), ['credit_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_publication_decision_id'), ['decision_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_publication_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_publication_published_at'), ['published_at'], unique=False)


def downgrade():
    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_publication_published_at'))
        batch_op.drop_index(batch_op.f('ix_publication_department_id'))
        batch_op.drop_index(batch_op.f('ix_publication_decision_id'))
        batch_op.drop_index(batch_op.f('ix_publication_credit_code'))
    op.drop_table('publication')
