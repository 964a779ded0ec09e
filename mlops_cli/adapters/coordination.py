"""The budget ledger of parallel attempts: one row per attempt slot in the tracking server's own database
(PostgreSQL, or a SQLite file for one machine), so that agents that share nothing else agree on it.

Budget accounting is exact under concurrency because every decision is one conditional statement the database
arbitrates: a slot is created by an INSERT on the primary key (project, commit, slot), so two proposers can never
both hand out slot 9 of a budget of 8; it is claimed by `UPDATE ... WHERE state = 'proposed'` (a compare-and-set:
the agent whose update changed one row has it); a batch is judged by whoever INSERTs its verdict row first. An
agent killed mid-attempt leaves its slot `claimed`; once its lease ran out, any agent marks it `killed`: it
counts against the budget (the attempt did run; its MLflow run is marked KILLED) and the others go on.
Every statement is its own short transaction, so a database restart between two of them loses nothing: the next
statement reconnects (pool_pre_ping). sqlalchemy's errors become CoordinationError here.
"""
from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

from mlops_cli.errors import MlopsError
from mlops_cli.secrets import scrub

PROPOSED, CLAIMED, DONE, FAILED, KILLED = "proposed", "claimed", "done", "failed", "killed"
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


class Ledger:
    """Slots and batch verdicts of one project and commit, in the database at `url` (SQLAlchemy URL)."""

    def __init__(self, url: str, project: str, commit: str) -> None:
        import sqlalchemy as sa

        self._sa = sa
        self.url, self.project, self.commit = url, project, commit
        self.statements = 0
        with self._mapped():
            sqlite = sa.engine.make_url(url).get_backend_name() == "sqlite"
            self.engine = sa.create_engine(url, pool_pre_ping=True, connect_args={"timeout": 30} if sqlite else {})
            meta = sa.MetaData()
            self.slots = sa.Table(
                "mlops_slots", meta,
                sa.Column("project", sa.String(200), primary_key=True),
                sa.Column("commit_id", sa.String(64), primary_key=True),
                sa.Column("slot", sa.Integer, primary_key=True),
                sa.Column("batch", sa.Integer, nullable=False),
                sa.Column("state", sa.String(16), nullable=False),
                sa.Column("proposal", sa.Text, nullable=False),
                sa.Column("agent", sa.String(200)),
                sa.Column("mlflow_run", sa.String(64)),
                sa.Column("value", sa.Float),
                sa.Column("claimed_at", sa.Float),
                sa.Column("finished_at", sa.Float))
            self.verdicts = sa.Table(
                "mlops_verdicts", meta,
                sa.Column("project", sa.String(200), primary_key=True),
                sa.Column("commit_id", sa.String(64), primary_key=True),
                sa.Column("batch", sa.Integer, primary_key=True),
                sa.Column("judge", sa.String(200), nullable=False),
                sa.Column("best_slot", sa.Integer),
                sa.Column("met", sa.Boolean, nullable=False))
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

    def propose(self, batch: int, first: int, proposals: list[dict[str, Any]], budget: int) -> list[int]:
        """Insert `proposals` as slots first, first+1, ... of `batch`, never past slot `budget`; returns the slots
        this call created (none when another agent proposed the round first: the keys collide)."""
        created: list[int] = []
        for slot, proposal in enumerate(proposals, start=first):
            if slot > budget:
                break
            try:
                self._execute(self.slots.insert().values(
                    project=self.project, commit_id=self.commit, slot=slot, batch=batch, state=PROPOSED,
                    proposal=json.dumps(proposal)))
            except CoordinationError as exc:
                if "IntegrityError" in exc.message or "UniqueViolation" in exc.message:
                    continue
                raise
            created.append(slot)
        return created

    def claim(self, agent: str, rows: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
        """Take the lowest proposed slot of `rows` (read now if not given) by a compare-and-set on its state;
        None when none is left."""
        for row in self.rows() if rows is None else rows:
            if row["state"] != PROPOSED:
                continue
            changed = self._execute(self.slots.update().where(
                self._key(self.slots) & (self.slots.c.slot == row["slot"]) & (self.slots.c.state == PROPOSED))
                .values(state=CLAIMED, agent=agent, claimed_at=time.time()))
            if changed == 1:
                return {**row, "state": CLAIMED, "agent": agent, "proposal": json.loads(row["proposal"])}
        return None

    def update(self, slot: int, **values: Any) -> None:
        self._execute(self.slots.update().where(self._key(self.slots) & (self.slots.c.slot == slot))
                      .values(**values))

    def finish(self, slot: int, state: str, value: float | None) -> None:
        self.update(slot, state=state, value=value, finished_at=time.time())

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

    # ---- batch verdicts ---------------------------------------------------------------------------------------

    def judge(self, batch: int, judge: str, best_slot: int | None, met: bool) -> bool:
        """Record the verdict on `batch`; True for the one caller that recorded it (it registers the champion)."""
        try:
            self._execute(self.verdicts.insert().values(project=self.project, commit_id=self.commit, batch=batch,
                                                        judge=judge, best_slot=best_slot, met=met))
        except CoordinationError as exc:
            if "IntegrityError" in exc.message or "UniqueViolation" in exc.message:
                return False
            raise
        return True

    def verdicts_met(self) -> bool:
        found = self._execute(self._sa.select(self.verdicts.c.met).where(self._key(self.verdicts)))
        return any(row[0] for row in found)

    def dispose(self) -> None:
        self.engine.dispose()
