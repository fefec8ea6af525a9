"""joint inspections: equivalent check items of a task, per-device contenders of synced fields

Revision ID: b7d2e9a4c1f0
Revises: ef2e5101b004
Create Date: 2026-11-26 05:50:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b7d2e9a4c1f0'
down_revision = 'ef2e5101b004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('task_check_item', schema=None) as batch_op:
        batch_op.add_column(sa.Column('equivalence_group', sa.String(length=64), nullable=True))
    with op.batch_alter_table('synced_entity', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contenders', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('synced_entity', schema=None) as batch_op:
        batch_op.drop_column('contenders')
    with op.batch_alter_table('task_check_item', schema=None) as batch_op:
        batch_op.drop_column('equivalence_group')
