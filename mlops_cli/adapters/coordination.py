"""The budget ledger of parallel attempts: one row per attempt slot in the tracking server's own database
(PostgreSQL, or a SQLite file for one machine), so that agents that share nothing else agree on it.

Budget accounting is exact under concurrency because every decision is one conditional statement the database
arbitrates. An agent claims the next slot with one INSERT ... SELECT: slot number max+1, only while fewer than
`budget` slots exist, fewer than `parallel` are claimed and none met the threshold; two agents computing the same
number collide on the primary key (project, commit, slot) and the loser tries the next. A slot is finished by one
UPDATE. The champion moves by a compare-and-set on the one `mlops_champion` row (only a better value replaces
it). An agent killed mid-attempt leaves its slot `claimed`; once its lease ran out, any agent marks it `killed`
(again a compare-and-set): it counts against the budget (the attempt did run; its MLflow run is marked KILLED).
Every statement is its own short transaction, so a database restart between two of them loses nothing: the next
statement reconnects (pool_pre_ping). On SQLite the file is switched to WAL with synchronous=NORMAL (a commit
is one append, not a journal's three fsyncs; WAL is persistent, so the tracking server's own connections to the
same file gain too). sqlalchemy's errors become CoordinationError here.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from mlops_cli.errors import MlopsError
from mlops_cli.secrets import scrub

CLAIMED, DONE, FAILED, KILLED = "claimed", "done", "failed", "killed"
FINISHED = (DONE, FAILED, KILLED)


class CoordinationError(MlopsError):
    """The coordination database refused a statement or could not be reached."""


OPTUNA_SCHEMA = "mlops_optuna"


def study_storage(url: str) -> str:
    """Where optuna keeps the study: beside MLflow's tables, not among them (both version their tables in an
    `alembic_version` table, and each refuses the other's). SQLite: a sibling file; PostgreSQL and others: a
    schema of their own in the same database, created here."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        return str(parsed.set(database=database.rsplit(".", 1)[0] + "-optuna.db" if database else database))
    try:
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            connection.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}"))
        engine.dispose()
    except Exception as exc:
        raise CoordinationError(f"cannot prepare the study's schema: {type(exc).__name__}: "
                                f"{scrub(str(exc))[:200]}", "check that the tracking database is up") from None
    return str(parsed.update_query_dict({"options": f"-csearch_path={OPTUNA_SCHEMA}"}))


def _sqlite_pragmas(engine: Any) -> None:
    """WAL (persistent, once per file) and synchronous=NORMAL (per connection): a commit is one append to the
    log instead of a rollback journal's fsyncs; a power cut may lose the last commits, never the file. A file
    that is busy when it is first opened keeps its mode; it still works."""
    import sqlalchemy as sa

    @sa.event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        with contextlib.suppress(Exception):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def sqlite_tuned(engine: Any) -> Any:
    """`engine` with the pragmas above when it is SQLite (optuna's storage makes its own engine)."""
    if engine.url.get_backend_name() == "sqlite":
        _sqlite_pragmas(engine)
        engine.dispose()   # connections made before the hook was set
    return engine


class Ledger:
    """Slots and the champion of one project and commit, in the database at `url` (SQLAlchemy URL)."""

    def __init__(self, url: str, project: str, commit: str) -> None:
        import sqlalchemy as sa

        self._sa = sa
        self.url, self.project, self.commit = url, project, commit
        self.statements = 0
        with self._mapped():
            sqlite = sa.engine.make_url(url).get_backend_name() == "sqlite"
            self.engine = sa.create_engine(url, pool_pre_ping=True, connect_args={"timeout": 30} if sqlite else {})
            sqlite_tuned(self.engine)
            meta = sa.MetaData()
            self.slots = sa.Table(
                "mlops_slots", meta,
                sa.Column("project", sa.String(200), primary_key=True),
                sa.Column("commit_id", sa.String(64), primary_key=True),
                sa.Column("slot", sa.Integer, primary_key=True),
                sa.Column("state", sa.String(16), nullable=False),
                sa.Column("proposal", sa.Text, nullable=False),
                sa.Column("agent", sa.String(200)),
                sa.Column("mlflow_run", sa.String(64)),
                sa.Column("value", sa.Float),
                sa.Column("met", sa.Boolean, nullable=False),
                sa.Column("claimed_at", sa.Float),
                sa.Column("finished_at", sa.Float))
            self.champions = sa.Table(
                "mlops_champion", meta,
                sa.Column("project", sa.String(200), primary_key=True),
                sa.Column("commit_id", sa.String(64), primary_key=True),
                sa.Column("slot", sa.Integer, nullable=False),
                sa.Column("value", sa.Float, nullable=False),
                sa.Column("mlflow_run", sa.String(64)),
                sa.Column("agent", sa.String(200)))
            with contextlib.suppress(sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError):
                meta.create_all(self.engine)   # two agents creating the tables at once: one wins

    @contextlib.contextmanager
    def _mapped(self) -> Iterator[None]:
        try:
            yield
        except MlopsError:
            raise
        except Exception as exc:
            text = scrub(" ".join(str(exc).split()))[:240]
            raise CoordinationError(f"coordination database failed: {type(exc).__name__}: {text}",
                                    "check that the tracking database is up; the attempt can be run again") from None

    def _key(self, table: Any) -> Any:
        return (table.c.project == self.project) & (table.c.commit_id == self.commit)

    def _execute(self, statement: Any) -> Any:
        """One statement, one transaction; one retry after a dropped connection (a database restart)."""
        for attempt in (1, 2, 3):
            with self._mapped():
                try:
                    with self.engine.begin() as connection:
                        self.statements += 1
                        result = connection.execute(statement)
                        return result.fetchall() if result.returns_rows else result.rowcount
                except self._sa.exc.OperationalError:   # connection lost, or SQLite busy: not a conflict
                    if attempt == 3:
                        raise
                    time.sleep(0.5 * attempt)
        raise AssertionError("unreachable")

    # ---- slots ------------------------------------------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        found = self._execute(self._sa.select(self.slots).where(self._key(self.slots)).order_by(self.slots.c.slot))
        return [dict(row._mapping) for row in found]

    def claim(self, agent: str, budget: int, parallel: int) -> int | None:
        """The next slot for `agent`, claimed by one INSERT ... SELECT that the database arbitrates; None when the
        budget is handed out, `parallel` slots are in flight, or a finished slot met the threshold."""
        sa, slots = self._sa, self.slots
        last = sa.func.coalesce(sa.func.max(slots.c.slot), 0)
        in_flight = sa.func.coalesce(sa.func.sum(sa.case((slots.c.state == CLAIMED, 1), else_=0)), 0)
        met = sa.func.coalesce(sa.func.sum(sa.case((slots.c.met, 1), else_=0)), 0)
        for _ in range(budget + 1):   # each collision means another agent took a slot: bounded by the budget
            select = sa.select(sa.literal(self.project), sa.literal(self.commit), last + 1, sa.literal(CLAIMED),
                               sa.literal("{}"), sa.literal(agent), sa.false(), sa.literal(time.time())) \
                .where(self._key(slots)).having((last < budget) & (in_flight < parallel) & (met == 0))
            statement = slots.insert().from_select(
                ["project", "commit_id", "slot", "state", "proposal", "agent", "met", "claimed_at"], select) \
                .returning(slots.c.slot)
            try:
                found = self._execute(statement)
            except CoordinationError as exc:
                if "IntegrityError" in exc.message or "UniqueViolation" in exc.message:
                    continue
                raise
            return found[0][0] if found else None
        return None

    def update(self, slot: int, **values: Any) -> None:
        self._execute(self.slots.update().where(self._key(self.slots) & (self.slots.c.slot == slot))
                      .values(**values))

    def finish(self, slot: int, state: str, value: float | None, met: bool = False) -> None:
        self.update(slot, state=state, value=value, met=met, finished_at=time.time())

    def reap(self, lease_s: float) -> list[dict[str, Any]]:
        """Slots claimed longer than `lease_s` ago (their agent died): marked killed, returned for the caller to
        mark their MLflow runs KILLED. Compare-and-set too: two reapers never both reap one slot."""
        reaped = []
        for row in self.rows():
            if row["state"] == CLAIMED and (row["claimed_at"] or 0) < time.time() - lease_s:
                changed = self._execute(self.slots.update().where(
                    self._key(self.slots) & (self.slots.c.slot == row["slot"]) & (self.slots.c.state == CLAIMED))
                    .values(state=KILLED, finished_at=time.time()))
                if changed == 1:
                    reaped.append(row)
        return reaped

    # ---- the champion ----------------------------------------------------------------------------------------

    def crown(self, slot: int, value: float, mlflow_run: str | None, agent: str, lower_is_better: bool) -> bool:
        """Make `slot` the champion if its value beats the current one (compare-and-set); True for the caller
        whose statement changed the row: it moves the registry's alias."""
        table = self.champions
        values = {"slot": slot, "value": value, "mlflow_run": mlflow_run, "agent": agent}
        better = table.c.value > value if lower_is_better else table.c.value < value
        if self._execute(table.update().where(self._key(table) & better).values(**values)) == 1:
            return True
        if self.champion() is not None:
            return False
        try:
            self._execute(table.insert().values(project=self.project, commit_id=self.commit, **values))
        except CoordinationError as exc:
            if "IntegrityError" in exc.message or "UniqueViolation" in exc.message:   # another agent was first
                return self._execute(table.update().where(self._key(table) & better).values(**values)) == 1
            raise
        return True

    def champion(self) -> dict[str, Any] | None:
        found = self._execute(self._sa.select(self.champions).where(self._key(self.champions)))
        return dict(found[0]._mapping) if found else None

    def dispose(self) -> None:
        self.engine.dispose()
