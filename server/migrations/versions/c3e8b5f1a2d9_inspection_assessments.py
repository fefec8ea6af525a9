"""inspection assessments: evidence links, flags

Revision ID: c3e8b5f1a2d9
Revises: ef2e5101b004
Create Date: 2026-11-26 06:10:00

"""
import sqlalchemy as sa
from alembic import op

import server.db_types

# revision identifiers, used by Alembic.
revision = 'c3e8b5f1a2d9'
down_revision = 'ef2e5101b004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('inspection_media',
    sa.Column('inspection_id', sa.Uuid(), nullable=False),
    sa.Column('media_id', sa.Uuid(), nullable=False),
    sa.Column('task_id', sa.Uuid(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('attached_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['inspection_id'], ['synced_entity.id'], name=op.f('fk_inspection_media_inspection_id_synced_entity')),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], name=op.f('fk_inspection_media_media_id_media')),
    sa.ForeignKeyConstraint(['task_id'], ['inspection_task.id'], name=op.f('fk_inspection_media_task_id_inspection_task')),
    sa.PrimaryKeyConstraint('inspection_id', 'media_id', name=op.f('pk_inspection_media'))
    )
    op.create_index(op.f('ix_inspection_media_media_id'), 'inspection_media', ['media_id'], unique=False)
    op.create_index(op.f('ix_inspection_media_task_id'), 'inspection_media', ['task_id'], unique=False)
    op.create_table('inspection_assessment',
    sa.Column('inspection_id', sa.Uuid(), nullable=False),
    sa.Column('task_id', sa.Uuid(), nullable=False),
    sa.Column('assessed_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.Column('warnings', sa.Integer(), nullable=False),
    sa.Column('pending_media', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['inspection_id'], ['synced_entity.id'], name=op.f('fk_inspection_assessment_inspection_id_synced_entity')),
    sa.ForeignKeyConstraint(['task_id'], ['inspection_task.id'], name=op.f('fk_inspection_assessment_task_id_inspection_task')),
    sa.PrimaryKeyConstraint('inspection_id', name=op.f('pk_inspection_assessment'))
    )
    op.create_index(op.f('ix_inspection_assessment_assessed_at'), 'inspection_assessment', ['assessed_at'], unique=False)
    op.create_index(op.f('ix_inspection_assessment_task_id'), 'inspection_assessment', ['task_id'], unique=False)
    op.create_table('inspection_flag',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('inspection_id', sa.Uuid(), nullable=False),
    sa.Column('task_id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('media_id', sa.Uuid(), nullable=True),
    sa.Column('raised_at', server.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['inspection_id'], ['synced_entity.id'], name=op.f('fk_inspection_flag_inspection_id_synced_entity')),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], name=op.f('fk_inspection_flag_media_id_media')),
    sa.ForeignKeyConstraint(['task_id'], ['inspection_task.id'], name=op.f('fk_inspection_flag_task_id_inspection_task')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspection_flag'))
    )
    op.create_index(op.f('ix_inspection_flag_code'), 'inspection_flag', ['code'], unique=False)
    op.create_index(op.f('ix_inspection_flag_inspection_id'), 'inspection_flag', ['inspection_id'], unique=False)
    op.create_index(op.f('ix_inspection_flag_task_id'), 'inspection_flag', ['task_id'], unique=False)


def downgrade():
    op.drop_table('inspection_flag')
    op.drop_table('inspection_assessment')
    op.drop_table('inspection_media')
