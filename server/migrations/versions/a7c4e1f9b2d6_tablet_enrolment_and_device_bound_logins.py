"""tablet enrolment codes, device enrolment/retirement times, device-bound refresh tokens (issue 13)

Revision ID: a7c4e1f9b2d6
Revises: f1a2b3c4d5e6
Create Date: 2026-12-03 06:30:00

"""
import sqlalchemy as sa
from alembic import op

import server.db_types

# revision identifiers, used by Alembic.
revision = 'a7c4e1f9b2d6'
down_revision = 'f1a2b3c4d5e6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.add_column(sa.Column('enrolled_at', server.db_types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('retired_at', server.db_types.UTCDateTime(timezone=True), nullable=True))

    op.create_table('enrolment_code',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('issued_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('issued_by_id', sa.Uuid(), nullable=True),
    sa.Column('used_at', server.db_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', server.db_types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], name=op.f('fk_enrolment_code_device_id_device')),
    sa.ForeignKeyConstraint(['issued_by_id'], ['app_user.id'], name=op.f('fk_enrolment_code_issued_by_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrolment_code')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_enrolment_code_code_hash'))
    )
    with op.batch_alter_table('enrolment_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrolment_code_device_id'), ['device_id'], unique=False)

    with op.batch_alter_table('refresh_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('device_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('device_key', sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f('ix_refresh_token_device_id'), ['device_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_refresh_token_device_id_device'), 'device', ['device_id'], ['id'])


def downgrade():
    with op.batch_alter_table('refresh_token', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_refresh_token_device_id_device'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_refresh_token_device_id'))
        batch_op.drop_column('device_key')
        batch_op.drop_column('device_id')

    with op.batch_alter_table('enrolment_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrolment_code_device_id'))
    op.drop_table('enrolment_code')

    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.drop_column('retired_at')
        batch_op.drop_column('enrolled_at')
