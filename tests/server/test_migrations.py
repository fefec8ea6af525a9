"""The Alembic migrations build exactly the schema the models describe."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from server.extensions import db


def test_migrated_schema_matches_the_models(app) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_check_constraints_guard_enumerations(app) -> None:
    """A value outside an enumeration cannot be written even bypassing the services."""
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from tests.conftest import build_world

    world = build_world()
    with pytest.raises(IntegrityError):
        db.session.execute(text("UPDATE inspection_task SET status = 'exploded' WHERE id = :id"),
                           {"id": world.task.id.hex if db.engine.dialect.name == "sqlite" else world.task.id})
        db.session.flush()
    db.session.rollback()


def test_the_migrations_have_one_head(app) -> None:
    """Features built side by side add migration branches; they are merged before landing."""
    from alembic.script import ScriptDirectory

    config = app.extensions["migrate"].migrate.get_config(app.extensions["migrate"].directory)
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1
