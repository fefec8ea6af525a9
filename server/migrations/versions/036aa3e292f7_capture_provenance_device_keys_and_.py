"""capture provenance: device keys and capture manifests

Revision ID: 036aa3e292f7
Revises: b4d8f2a6c1e3
Create Date: 2026-12-03 10:27:51.811141

"""
import sqlalchemy as sa
from alembic import op

import server.db_types

# revision identifiers, used by Alembic.
revision = '036aa3e292f7'
down_revision = 'b4d8f2a6c1e3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('device_key',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('public_key', sa.String(length=64), nullable=False),
    sa.Column('registered_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', server.db_types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], name=op.f('fk_device_key_device_id_device')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_key')),
    sa.UniqueConstraint('public_key', name=op.f('uq_device_key_public_key'))
    )
    with op.batch_alter_table('device_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_key_device_id'), ['device_id'], unique=False)

    op.create_table('capture_manifest',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('media_id', sa.Uuid(), nullable=True),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('key_id', sa.Uuid(), nullable=False),
    sa.Column('counter', sa.Integer(), nullable=False),
    sa.Column('prev', sa.String(length=64), nullable=False),
    sa.Column('manifest_hash', sa.String(length=64), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=False),
    sa.Column('received_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], name=op.f('fk_capture_manifest_device_id_device')),
    sa.ForeignKeyConstraint(['key_id'], ['device_key.id'], name=op.f('fk_capture_manifest_key_id_device_key')),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], name=op.f('fk_capture_manifest_media_id_media'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_capture_manifest')),
    sa.UniqueConstraint('device_id', 'counter', name='uq_capture_manifest_device_counter'),
    sa.UniqueConstraint('manifest_hash', name=op.f('uq_capture_manifest_manifest_hash')),
    sa.UniqueConstraint('media_id', name=op.f('uq_capture_manifest_media_id'))
    )


def downgrade():
    op.drop_table('capture_manifest')
    with op.batch_alter_table('device_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_key_device_id'))

    op.drop_table('device_key')
