"""the clock ledger: each device's clock against the server's at every sync and upload (issue 17)

Revision ID: b4d8f2a6c1e3
Revises: a7c3e9d1b5f2
Create Date: 2026-12-03 10:40:00

"""
import sqlalchemy as sa
from alembic import op

import server.db_types

# revision identifiers, used by Alembic.
revision = 'b4d8f2a6c1e3'
down_revision = 'a7c3e9d1b5f2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('clock_reading',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.Enum('push', 'pull', 'upload', name='clock_reading_kind', native_enum=False,
                              create_constraint=True, length=20), nullable=False),
    sa.Column('source', sa.Enum('header', 'hlc', name='clock_reading_source', native_enum=False,
                                create_constraint=True, length=20), nullable=False),
    sa.Column('device_clock', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('server_time', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('offset_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], name=op.f('fk_clock_reading_device_id_device')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clock_reading'))
    )
    op.create_index('ix_clock_reading_device_id_device_clock', 'clock_reading', ['device_id', 'device_clock'],
                    unique=False)
    op.create_index('ix_clock_reading_device_id_server_time', 'clock_reading', ['device_id', 'server_time'],
                    unique=False)


def downgrade():
    op.drop_index('ix_clock_reading_device_id_server_time', table_name='clock_reading')
    op.drop_index('ix_clock_reading_device_id_device_clock', table_name='clock_reading')
    op.drop_table('clock_reading')
