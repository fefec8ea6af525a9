"""a department's sampling quota for watching footage in review (issue 17: review coverage)

Revision ID: a7c3e9d1b5f2
Revises: c263bb3f237d
Create Date: 2026-12-03 10:30:00

"""
import sqlalchemy as sa
from alembic import op

import server.db_types

# revision identifiers, used by Alembic.
revision = 'a7c3e9d1b5f2'
down_revision = 'c263bb3f237d'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('review_quota',
    sa.Column('department_id', sa.Uuid(), nullable=False),
    sa.Column('coercive_in_full', sa.Boolean(), nullable=False),
    sa.Column('other_percent', sa.Integer(), nullable=False),
    sa.Column('updated_by_id', sa.Uuid(), nullable=True),
    sa.Column('updated_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_review_quota_department_id_department')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['app_user.id'], name=op.f('fk_review_quota_updated_by_id_app_user')),
    sa.PrimaryKeyConstraint('department_id', name=op.f('pk_review_quota'))
    )


def downgrade():
    op.drop_table('review_quota')
