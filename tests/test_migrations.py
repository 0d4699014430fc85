"""The migrations build exactly the models' schema, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from accessreview.migrate import head_revision, include_object
from accessreview.models import Base


def test_migrated_schema_matches_the_models(database_url):
    engine = create_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": include_object})
        assert context.get_current_revision() == head_revision()
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert differences == [], f"migrations and models disagree: {differences}"


def test_downgrade_and_upgrade_round_trip(tmp_path):
    from accessreview.migrate import alembic_config
    from alembic import command

    url = f"sqlite:///{tmp_path / 'roundtrip.sqlite3'}"
    command.upgrade(alembic_config(url), "head")
    command.downgrade(alembic_config(url), "base")
    command.upgrade(alembic_config(url), "head")
    engine = create_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": include_object})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()
