"""tasks: late registration reason, cancellation; assessments: the rules version that made them (issue 18)

Revision ID: d8e2a6c4f1b9
Revises: b3f7d1c5e9a2
Create Date: 2026-12-04 10:40:00

"""
import sqlalchemy as sa
from alembic import op

import server.db_types

# revision identifiers, used by Alembic.
revision = 'd8e2a6c4f1b9'
down_revision = 'b3f7d1c5e9a2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('inspection_task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('late_registration_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('cancelled_at', server.db_types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cancel_reason', sa.Text(), nullable=True))
    # Existing assessments were made by the first rules: the sweeper re-assesses them with the new ones.
    with op.batch_alter_table('inspection_assessment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rules_version', sa.Integer(), server_default='1', nullable=False))


def downgrade():
    with op.batch_alter_table('inspection_assessment', schema=None) as batch_op:
        batch_op.drop_column('rules_version')
    with op.batch_alter_table('inspection_task', schema=None) as batch_op:
        batch_op.drop_column('cancel_reason')
        batch_op.drop_column('cancelled_at')
        batch_op.drop_column('late_registration_reason')
