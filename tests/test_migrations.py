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


def test_decisions_are_rekeyed_by_time_and_keep_their_rows(tmp_path):
    """0005 gives the decision log the key (decided_at, id) in place of id plus a time index; compare_metadata
    does not look at primary keys, so this does, both ways, with a row that must survive."""
    from alembic import command
    from sqlalchemy import inspect, text

    from accessreview.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'rekey.sqlite3'}"

    def shape() -> tuple[list[str], list[str], list[str]]:
        engine = create_engine(url)
        with engine.connect() as connection:
            ids = [row[0] for row in connection.execute(text("SELECT id FROM decisions"))]
            table_sql = connection.execute(text("SELECT sql FROM sqlite_master WHERE name = 'decisions'")).scalar()
        schema = inspect(engine)
        key = schema.get_pk_constraint("decisions")["constrained_columns"]
        indexes = [index["name"] for index in schema.get_indexes("decisions")]
        engine.dispose()
        assert "WITHOUT ROWID" in table_sql
        return key, indexes, ids

    command.upgrade(alembic_config(url), "0004")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO decisions (id, decided_at, caller, actor, action, resource, allowed, "
                                "policy_version, revision, latency_us, grant_ids) VALUES ('d1', "
                                "'2026-11-25 03:18:40.000001', 'service:portal', 'user:alice', 'read', "
                                "'document:d1', 1, 'v1', 7, 3, '[4]')"))
    engine.dispose()
    command.upgrade(alembic_config(url), "head")
    assert shape() == (["decided_at", "id"], [], ["d1"])
    command.downgrade(alembic_config(url), "0004")
    assert shape() == (["id"], ["ix_decisions_decided_at"], ["d1"])


def test_review_items_keep_room_for_heap_only_updates_on_postgresql(database_url):
    """0018: remediation's updates of review items touch no indexed column; PostgreSQL keeps them on the
    same page, without new index entries, only when its pages keep room for them."""
    import pytest
    from sqlalchemy import text

    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL storage parameter")
    engine = create_engine(database_url)
    with engine.connect() as connection:
        options = connection.scalar(text("SELECT reloptions FROM pg_class WHERE relname = 'review_items'"))
    engine.dispose()
    assert "fillfactor=70" in (options or [])
