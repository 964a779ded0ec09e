"""The budget ledger under real concurrency: processes racing to claim on one database get exactly the budget,
each slot once, never more in flight than allowed and none after the threshold was met; a dead agent's slot is
reaped once; the champion only improves; a PostgreSQL restart between statements changes nothing."""
from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from tests.tracking_servers import Postgres, postgres_bin

pytest.importorskip("sqlalchemy")


def _race(url: str, name: str, budget: int, parallel: int, queue: multiprocessing.Queue) -> None:
    from mlops_cli.adapters.coordination import Ledger

    ledger = Ledger(url, "race", "c0ffee")
    claimed, most = [], 0
    while (slot := ledger.claim(name, budget, parallel)) is not None:
        claimed.append(slot)
        most = max(most, sum(row["state"] == "claimed" for row in ledger.rows()))
        ledger.finish(slot, "done", 0.5)
    queue.put((name, claimed, most))


def _race_all(url: str) -> None:
    """Four processes claim and finish until the ledger hands out nothing more: budget 12, 2 in flight."""
    from mlops_cli.adapters.coordination import Ledger

    Ledger(url, "race", "c0ffee").dispose()   # tables first, as the first agent's start makes them
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_race, args=(url, f"a{i}", 12, 2, queue)) for i in range(4)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    claimed = sorted(slot for _, got, _ in results for slot in got)
    assert claimed == list(range(1, 13))
    assert max(most for _, _, most in results) <= 2            # never more than `parallel` in flight
    rows = Ledger(url, "race", "c0ffee").rows()
    assert [row["state"] for row in rows] == ["done"] * 12
    assert {row["agent"] for row in rows} == {name for name, got, _ in results if got}


def test_racing_agents_get_exactly_the_budget_each_slot_once(tmp_path: Path) -> None:
    _race_all(f"sqlite:///{tmp_path / 'ledger.db'}")


@pytest.mark.slow
@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL binaries (initdb, pg_ctl) not found: "
                    "apt-get install -y postgresql (scripts/ci-services.sh does)")
def test_racing_agents_on_postgres_collide_on_the_key_and_take_the_next() -> None:
    database = Postgres().start()   # concurrent writers: two claims compute the same slot, one retries
    try:
        _race_all(database.url)
    finally:
        database.stop()


def test_no_slot_after_the_threshold_is_met_and_the_champion_only_improves(tmp_path: Path) -> None:
    from mlops_cli.adapters.coordination import Ledger

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", "p", "c")
    assert (ledger.claim("a", 10, 3), ledger.claim("b", 10, 3)) == (1, 2)
    assert ledger.crown(2, 0.8, "run2", "b", lower_is_better=False)
    assert not ledger.crown(1, 0.7, "run1", "a", lower_is_better=False)   # worse: the row stays
    assert ledger.crown(1, 0.85, "run1", "a", lower_is_better=False)
    assert ledger.champion()["mlflow_run"] == "run1"
    ledger.finish(2, "done", 0.8)
    ledger.finish(1, "done", 0.95, met=True)
    assert ledger.claim("a", 10, 3) is None                    # met: nothing more is handed out


def test_a_dead_agents_slot_is_reaped_once_and_counts(tmp_path: Path) -> None:
    from mlops_cli.adapters.coordination import Ledger

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    first, second = Ledger(url, "p", "c"), Ledger(url, "p", "c")
    assert first.claim("dead", 2, 1) == 1
    assert second.claim("b", 2, 1) is None                     # one in flight at most
    assert second.reap(lease_s=3600) == []                     # within its lease: alive
    reaped = second.reap(lease_s=0)
    assert [row["slot"] for row in reaped] == [1] and first.reap(lease_s=0) == []
    assert second.claim("b", 2, 1) == 2
    second.finish(2, "done", 0.5)
    assert first.claim("a", 2, 1) is None                      # the killed slot still counts
    assert [row["state"] for row in first.rows()] == ["killed", "done"]


@pytest.mark.slow
@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL binaries (initdb, pg_ctl) not found: "
                    "apt-get install -y postgresql (scripts/ci-services.sh does)")
def test_the_ledger_survives_a_postgres_restart() -> None:
    from mlops_cli.adapters.coordination import Ledger, study_storage

    database = Postgres().start()
    try:
        ledger = Ledger(database.url, "p", "c")
        assert ledger.claim("a", 4, 2) == 1
        database.restart()                                       # every pooled connection is now dead
        ledger.finish(1, "done", 0.9)
        assert ledger.crown(1, 0.9, "run1", "a", lower_is_better=False)
        assert ledger.claim("a", 4, 2) == 2
        assert [row["state"] for row in ledger.rows()] == ["done", "claimed"]
        import optuna

        study = optuna.create_study(storage=study_storage(database.url), study_name="s")
        study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.5)
        assert len(study.trials) == 1
        ledger.dispose()
    finally:
        database.stop()
