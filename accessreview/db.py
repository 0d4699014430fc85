"""Database integration: one engine and sessionmaker per app, a session per request."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from flask import Flask, current_app, g
from sqlalchemy import JSON, any_, bindparam, create_engine, event, insert, inspect, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .errors import NotFound
from .validation import NUL, nul_refused


def make_engine(url: str, **options) -> Engine:
    options.setdefault("json_serializer", _json_text)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **options)
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **options)


def _json_text(value: Any) -> str:
    """A JSON column's text: as made already where it is (:class:`JsonText`), else ``json.dumps``."""
    return str.__str__(value) if isinstance(value, JsonText) else json.dumps(value)


def _configure_sqlite(engine: Engine) -> None:
    # SQLAlchemy's documented recipe: let SQLAlchemy, not pysqlite, issue BEGIN, so transactions and
    # savepoints behave as on PostgreSQL. Writers queue on the database lock (see audit.lock_state);
    # WAL keeps readers from waiting on them.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - exercised by every test
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # pragma: no cover
        connection.exec_driver_sql("BEGIN")


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self.sessionmaker()

    def dispose(self) -> None:
        self.engine.dispose()


def init_app(app: Flask) -> None:
    app.extensions["db"] = Database(app.config["DATABASE_URL"])

    @app.teardown_appcontext
    def _close_session(_exc):
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


def get_db() -> Database:
    return current_app.extensions["db"]


T = TypeVar("T")


def get_or_404(session: Session, model: type[T], key: Any, what: str, field: str = "id") -> T:
    """The row with primary key ``key``, or a 404 that names it (``grant 7 does not exist``). A text
    key that no row can have (longer than its column) is not looked for; one with a NUL is refused."""
    if isinstance(key, str):
        if NUL in key:
            raise nul_refused((field,))
        column = inspect(model).primary_key[0]
        if len(key) > (getattr(column.type, "length", None) or len(key)):
            raise NotFound(f"{what} {key[:40]}… does not exist", field=field)
    row = session.get(model, key)
    if row is None:
        raise NotFound(f"{what} {key} does not exist", field=field)
    return row


def get_session() -> Session:
    """The request's (or CLI command's) session; the caller that owns the unit of work commits."""
    if "db_session" not in g:
        g.db_session = get_db().session()
    return g.db_session


def analyze(session: Session, model) -> None:
    """Fresh PostgreSQL statistics for a table a long job is growing, in the session's transaction
    (autovacuum may be slow to see the growth, or off). SQLite plans without them."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"ANALYZE {model.__table__.name}"))


def settle(session: Session, model) -> None:
    """After a bulk write that later steps and pages read in chunks, on PostgreSQL: vacuum and analyze
    its table, as autovacuum would a minute or more later. Until then the planner, going by statistics
    from before the write, took 200,000 new review items for a handful and read and sorted all of them
    for every chunk and every page (0.8 s instead of 5 ms for a reviewer's queue page), and counts read
    from an index visited every row, no page being marked all-visible yet. VACUUM cannot run in a
    transaction: it has a connection of its own, so the caller must hold no lock worth waiting for."""
    engine = session.get_bind().engine
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"VACUUM (ANALYZE) {model.__table__.name}"))


MOST_KEYS = 1000  # keys one statement names at most, where they are one parameter each


def among(session: Session, column, values: list[Any]):
    """``column IN values``. On PostgreSQL one array parameter (``column = ANY(...)``): the statement's
    text, and the work of making and parsing it, stay the same however many values; elsewhere the
    usual list of parameters, which callers keep to :data:`MOST_KEYS` (:func:`key_batches`)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def key_batches(session: Session, values: list[Any]) -> list[list[Any]]:
    """``values`` in as few lists as :func:`among` takes in one statement: one on PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return [list(values)] if values else []
    return [list(values[start:start + MOST_KEYS]) for start in range(0, len(values), MOST_KEYS)]


class JsonText(str):
    """A JSON column's value with its JSON text made already (for a hash, say), stored as that text
    rather than serialized a second time (:func:`bulk_insert`; the engines' JSON serializer): a reader of
    the column's text gets the text the hash covers."""

    value: Any

    def __new__(cls, text: str, value: Any) -> "JsonText":
        made = super().__new__(cls, text)
        made.value = value
        return made


COPY_AT_LEAST = 200  # rows from which PostgreSQL's COPY beats a pipelined executemany


def bulk_insert(session: Session, model, rows: list[dict[str, Any]]) -> None:
    """Insert plain rows in the session's transaction: with COPY on PostgreSQL (a tenth of the time of
    row-by-row inserts at thousands of rows), as one executemany elsewhere. Rows name the same columns."""
    if not rows:
        return
    table = model.__table__
    columns = list(rows[0])
    json_columns = [name for name in columns if isinstance(table.c[name].type, JSON)]
    if session.get_bind().dialect.name != "postgresql" or len(rows) < COPY_AT_LEAST:
        session.execute(insert(model), rows)
        return
    positions = [columns.index(name) for name in json_columns]
    cursor = session.connection().connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            values = [row[name] for name in columns]
            for at in positions:
                if values[at] is not None:
                    values[at] = _json_text(values[at])
            copy.write_row(values)
