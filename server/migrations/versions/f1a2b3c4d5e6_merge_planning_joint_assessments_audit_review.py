"""merge the branches added side by side: planning, joint records, inspection assessments, audit log, review

Revision ID: f1a2b3c4d5e6
Revises: a1c6f0e2d7b3, b7d2e9a4c1f0, c3e8b5f1a2d9, d4f9a6b2c8e1, e5a0b7c3d9f2
Create Date: 2026-11-26 07:00:00

"""


# revision identifiers, used by Alembic.
revision = 'f1a2b3c4d5e6'
down_revision = ('a1c6f0e2d7b3', 'b7d2e9a4c1f0', 'c3e8b5f1a2d9', 'd4f9a6b2c8e1', 'e5a0b7c3d9f2')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
