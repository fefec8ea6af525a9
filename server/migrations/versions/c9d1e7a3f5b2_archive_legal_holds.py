"""archive: legal holds

Revision ID: c9d1e7a3f5b2
Revises: a7c4e1f9b2d6
Create Date: 2026-12-03 07:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

import server.db_types

# revision identifiers, used by Alembic.
revision = 'c9d1e7a3f5b2'
down_revision = 'a7c4e1f9b2d6'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('legal_hold',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('object_type', sa.Enum('inspection', 'media', name='held_object', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('object_id', sa.Uuid(), nullable=False),
    sa.Column('department_id', sa.Uuid(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('placed_by_id', sa.Uuid(), nullable=True),
    sa.Column('placed_by', sa.String(length=150), nullable=False),
    sa.Column('placed_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lifted_by_id', sa.Uuid(), nullable=True),
    sa.Column('lifted_by', sa.String(length=150), nullable=True),
    sa.Column('lifted_at', server.db_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lift_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_legal_hold_department_id_department')),
    sa.ForeignKeyConstraint(['lifted_by_id'], ['app_user.id'], name=op.f('fk_legal_hold_lifted_by_id_app_user')),
    sa.ForeignKeyConstraint(['placed_by_id'], ['app_user.id'], name=op.f('fk_legal_hold_placed_by_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_legal_hold'))
    )
    with op.batch_alter_table('legal_hold', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_legal_hold_department_id'), ['department_id'], unique=False)
        batch_op.create_index('ix_legal_hold_object', ['object_type', 'object_id'], unique=False)


def downgrade():
    with op.batch_alter_table('legal_hold', schema=None) as batch_op:
        batch_op.drop_index('ix_legal_hold_object')
        batch_op.drop_index(batch_op.f('ix_legal_hold_department_id'))
    op.drop_table('legal_hold')
