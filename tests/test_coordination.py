"""The budget ledger under real concurrency: processes racing to propose and claim on one database get exactly
the budget, each slot once; a dead agent's slot is reaped once; a PostgreSQL restart between statements changes
nothing."""
from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from tests.tracking_servers import Postgres, postgres_bin

pytest.importorskip("sqlalchemy")


def _race(url: str, name: str, budget: int, queue: multiprocessing.Queue) -> None:
    from mlops_cli.adapters.coordination import Ledger

    ledger = Ledger(url, "race", "c0ffee")
    created = ledger.propose(1, 1, [{"params": {"n": i}, "by": name} for i in range(budget + 2)], budget)
    claimed = []
    while (slot := ledger.claim(name)) is not None:
        claimed.append(slot["slot"])
        ledger.finish(slot["slot"], "done", 0.5)
    queue.put((name, created, claimed))


def test_racing_agents_get_exactly_the_budget_each_slot_once(tmp_path: Path) -> None:
    from mlops_cli.adapters.coordination import Ledger

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger(url, "race", "c0ffee").dispose()   # tables first, as the first agent's start makes them
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_race, args=(url, f"a{i}", 5, queue)) for i in range(4)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    created = sorted(slot for _, made, _ in results for slot in made)
    claimed = sorted(slot for _, _, got in results for slot in got)
    assert created == [1, 2, 3, 4, 5] and claimed == [1, 2, 3, 4, 5]
    rows = Ledger(url, "race", "c0ffee").rows()
    assert [row["state"] for row in rows] == ["done"] * 5


def test_a_dead_agents_slot_is_reaped_once_and_counts(tmp_path: Path) -> None:
    from mlops_cli.adapters.coordination import Ledger

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    first, second = Ledger(url, "p", "c"), Ledger(url, "p", "c")
    assert first.propose(1, 1, [{"params": {}}, {"params": {}}], budget=2) == [1, 2]
    assert first.claim("dead")["slot"] == 1
    assert second.reap(lease_s=3600) == []                  # within its lease: alive
    reaped = second.reap(lease_s=0)
    assert [row["slot"] for row in reaped] == [1] and first.reap(lease_s=0) == []
    assert first.propose(2, 3, [{"params": {}}], budget=2) == []   # the killed slot still counts
    assert [row["state"] for row in first.rows()] == ["killed", "proposed"]
    assert first.judge(1, "a", 2, False) and not second.judge(1, "b", 2, False)


@pytest.mark.slow
@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL binaries (initdb, pg_ctl) not found: "
                    "apt-get install -y postgresql (scripts/ci-services.sh does)")
def test_the_ledger_survives_a_postgres_restart() -> None:
    from mlops_cli.adapters.coordination import Ledger, study_storage

    database = Postgres().start()
    try:
        ledger = Ledger(database.url, "p", "c")
        assert ledger.propose(1, 1, [{"params": {}}, {"params": {}}], budget=4) == [1, 2]
        assert ledger.claim("a")["slot"] == 1
        database.restart()                                       # every pooled connection is now dead
        ledger.finish(1, "done", 0.9)
        assert ledger.claim("a")["slot"] == 2
        assert [row["state"] for row in ledger.rows()] == ["done", "claimed"]
        import optuna

        study = optuna.create_study(storage=study_storage(database.url), study_name="s")
        study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.5)
        assert len(study.trials) == 1
        ledger.dispose()
    finally:
        database.stop()
