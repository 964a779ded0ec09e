"""Host-only records: what a run leaves in its output area is data the host judges, never an instruction.

The training process writes only runs/N/out (and its checkpoints); run.json is the host's. These tests run real
trainings (scikit-learn, a second each) through the CLI as Jenkins would, with real signals and time limits."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import make_remote, run_json, run_mlops, wait_for

from mlops_cli.errors import WorkspaceError
from mlops_cli.workspace import OutcomeStatus, RunOutcome, Workspace

IRIS = ("from sklearn.datasets import load_iris\nfrom sklearn.linear_model import LogisticRegression\n"
        "from sklearn.model_selection import train_test_split\n"
        "X, y = load_iris(return_X_y=True)\n"
        "a, b, ya, yb = train_test_split(X, y, random_state=0, stratify=y)\n"
        "model = LogisticRegression(max_iter=500).fit(a, ya)\nprint('held-out', model.score(b, yb))\n")


def checkout(tmp_path: Path, script: str) -> Path:
    remote = make_remote(tmp_path, {"train.py": script})
    ws = tmp_path / "ws"
    pulled = run_mlops("pull", "--workspace", str(ws), "--repo", str(remote))
    assert pulled.returncode == 0, pulled.stderr
    return ws


def test_outputs_written_after_the_end_reopen_nothing(tmp_path: Path) -> None:
    """What lands in a finished run's output area later (a forged outcome, a lingering process) is not read as
    an instruction: the host's run.json says the run ended, so monitor restarts nothing and status keeps it."""
    ws = checkout(tmp_path, IRIS)
    trained = run_mlops("train", "--workspace", str(ws), "--runner", "local")
    assert trained.returncode == 0, trained.stderr
    (ws / "runs" / "0001" / "out" / "outcome.json").write_text(json.dumps({"status": "failed", "error": "x"}))
    monitor = run_mlops("monitor", "--workspace", str(ws), "--once")
    assert monitor.returncode == 0 and "idle" in monitor.stdout, monitor.stdout
    assert run_mlops("status", "--workspace", str(ws)).returncode == 0
    assert run_json(ws)["status"] == "succeeded"


def test_an_outcome_is_a_claim_judged_by_the_host(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    record = ws.new_run(entrypoint="train.py", profile="sklearn")
    ws.update_run(record.id, status="running")
    ws.write_outcome(record.id, RunOutcome(OutcomeStatus.SUCCEEDED))
    finished = ws.finish_run(record.id, 0)
    assert finished.status.value == "failed" and "no valid metrics.json" in finished.error
    other = ws.new_run(entrypoint="train.py", profile="sklearn")
    ws.update_run(other.id, status="running")
    ws.write_outcome(other.id, RunOutcome(OutcomeStatus.FAILED, "boom token=" + "x" * 2000, 1))
    failed = ws.finish_run(other.id, 1)
    assert failed.status.value == "failed" and failed.error.startswith("boom") and len(failed.error) <= 500
    (ws.output_dir(other.id) / "outcome.json").write_text('{"status": "bogus"}')
    with pytest.raises(WorkspaceError, match="unknown value"):
        ws.read_outcome(other.id)


def test_a_linked_train_log_is_never_followed(tmp_path: Path) -> None:
    """`runs/N/out/train.log` made a link to a host file: jobs 2 and 5 (`mlops jenkins wait`) and the failure
    tail must not show that file."""
    secret = tmp_path / "host-secret.txt"
    secret.write_text("HOST SECRET LINE\n")
    ws = checkout(tmp_path, IRIS)
    assert run_mlops("train", "--workspace", str(ws), "--runner", "local").returncode == 0
    log = ws / "runs" / "0001" / "out" / "train.log"
    log.unlink()
    log.symlink_to(secret)
    waited = run_mlops("jenkins", "wait", "--workspace", str(ws), "--run", "1", "--timeout", "20")
    assert "HOST SECRET" not in waited.stdout + waited.stderr
    assert Workspace(ws).follow_log("0001", 0) == ("", 0)
    assert Workspace(ws).log_tail("0001", 10) == []


def test_follow_log_is_incremental_and_keeps_partial_lines(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    record = ws.new_run(entrypoint="train.py")
    log = ws.output_dir(record.id) / "train.log"
    log.write_text("one\ntw")
    assert ws.follow_log(record.id, 0) == ("one\n", 4)
    with open(log, "a") as handle:
        handle.write("o\nthree\n")
    assert ws.follow_log(record.id, 4) == ("two\nthree\n", 14)
    log.write_text("new\n")   # rewritten shorter: followed from its start again
    assert ws.follow_log(record.id, 14) == ("new\n", 4)


def test_a_run_past_its_time_limit_is_stopped_and_failed(tmp_path: Path) -> None:
    """An infinite loop after fit must not hold the workspace: the attached train stops it at its limit."""
    ws = checkout(tmp_path, IRIS + "import time\nwhile True:\n    time.sleep(1)\n")
    started = time.monotonic()
    trained = run_mlops("train", "--workspace", str(ws), "--runner", "local", "--time-limit", "8", timeout=120)
    assert trained.returncode == 1, trained.stdout + trained.stderr
    assert time.monotonic() - started < 60
    record = run_json(ws)
    assert record["status"] == "failed" and "time limit of 8 s" in record["error"]
    again = run_mlops("train", "--workspace", str(ws), "--runner", "local", "--time-limit", "8", timeout=120)
    assert "already training" not in again.stderr, "the workspace is free again"


def test_monitor_stops_a_detached_run_past_its_limit(tmp_path: Path) -> None:
    ws = checkout(tmp_path, IRIS + "import time\nwhile True:\n    time.sleep(1)\n")
    started = run_mlops("train", "--workspace", str(ws), "--runner", "local", "--detach", "--time-limit", "3")
    assert started.returncode == 0, started.stderr
    pid = run_json(ws)["pid"]
    time.sleep(4)
    checked = run_mlops("monitor", "--workspace", str(ws), "--once")
    assert "stopped" in checked.stdout, checked.stdout
    assert run_json(ws)["status"] == "failed"
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or b"mlops_cli.harness" not in
             Path(f"/proc/{pid}/cmdline").read_bytes(), 30, "the training process to end")


def test_a_detached_run_is_recorded_when_read(tmp_path: Path) -> None:
    """Nobody waited for a detached training: the next command that reads the runs records how it ended."""
    ws = checkout(tmp_path, IRIS)
    assert run_mlops("train", "--workspace", str(ws), "--runner", "local", "--detach").returncode == 0
    wait_for(lambda: (ws / "runs" / "0001" / "out" / "outcome.json").exists() and
             Workspace(ws).training_holder() is None, 90, "the detached training to end")
    assert run_json(ws)["status"] == "running", "run.json is the host's: the harness did not write it"
    status = run_mlops("status", "--workspace", str(ws), "--json")
    assert status.returncode == 0, status.stderr
    assert run_json(ws)["status"] == "succeeded"


def test_a_run_that_never_started_training_uses_no_attempt(tmp_path: Path) -> None:
    ws = checkout(tmp_path, IRIS)
    env = {"MLOPS_IMAGE_SKLEARN": "mlops-no-such-image:none", "DOCKER_HOST": "unix:///nonexistent.sock"}
    refused = run_mlops("train", "--workspace", str(ws), "--runner", "docker", env=env)
    assert refused.returncode == 1 and refused.stderr.startswith("mlops: error:"), refused.stderr
    assert run_mlops("train", "--workspace", str(ws), "--runner", "local").returncode == 0
    runs = sorted((ws / "runs").iterdir())
    assert json.loads((runs[-1] / "run.json").read_text())["attempt"] == 1
    budget = {"MLOPS_MAX_ATTEMPTS": "2", "MLOPS_THRESHOLD": "0.999"}
    tweaked = run_mlops("tweak", "--workspace", str(ws), env=budget)
    assert tweaked.returncode == 0 and "budget spent" not in tweaked.stdout, tweaked.stdout + tweaked.stderr


def test_staged_code_is_swapped_in_whole(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    ws.stage_source(lambda folder: (folder.mkdir(), (folder / "train.py").write_text("old")))

    def half(folder: Path) -> None:
        folder.mkdir()
        (folder / "train.py").write_text("new")
        raise KeyboardInterrupt   # killed half-way through the copy

    with pytest.raises(KeyboardInterrupt):
        ws.stage_source(half)
    assert (ws.staged_source_dir / "train.py").read_text() == "old"
    assert sorted(os.listdir(ws.staged_source_dir)) == ["train.py"]


def test_the_code_copy_keeps_only_what_the_script_wrote(tmp_path: Path) -> None:
    """A run's work/ copy (Docker runner) is pruned when the run ends: a large data file of the checkout costs
    nothing per attempt, while the model the script saved beside itself stays."""
    from mlops_cli.workspace import copy_tree_confined

    ws = Workspace(tmp_path / "ws").ensure()
    ws.repo_dir.mkdir()
    (ws.repo_dir / "train.py").write_text("print(1)\n")
    (ws.repo_dir / "data").mkdir()
    (ws.repo_dir / "data" / "big.csv").write_bytes(b"1,2\n" * 100_000)
    record = ws.new_run(entrypoint="train.py", profile="sklearn")
    copy_tree_confined(ws.repo_dir, ws.work_dir(record.id))
    (ws.work_dir(record.id) / "w.h5").write_bytes(b"\x89HDF\r\n")
    (ws.work_dir(record.id) / "train.py").write_text("print(2)\n")   # the script rewrote itself: kept
    ws.update_run(record.id, status="running")
    ws.finish_run(record.id, 1, crash="killed")
    left = sorted(str(p.relative_to(ws.work_dir(record.id))) for p in ws.work_dir(record.id).rglob("*"))
    assert left == ["train.py", "w.h5"]


def test_a_secret_the_script_prints_is_not_kept_in_its_log(tmp_path: Path) -> None:
    """The script found a secret somewhere and printed it: the host rewrites the finished run's log scrubbed."""
    ws = checkout(tmp_path, IRIS + "import pathlib\nprint('found', pathlib.Path('secret.txt').read_text())\n")
    (ws / "repo" / "secret.txt").write_text("smtp-pw-8675309")
    trained = run_mlops("train", "--workspace", str(ws), "--runner", "local",
                        env={"MLOPS_SMTP_PASSWORD": "smtp-pw-8675309"})
    assert trained.returncode == 0, trained.stderr
    log = (ws / "runs" / "0001" / "out" / "train.log").read_text()
    assert "found ***" in log and "smtp-pw-8675309" not in log + trained.stdout + trained.stderr


def test_an_output_area_replaced_by_a_link_is_never_read_or_promoted(tmp_path: Path) -> None:
    """Local runner: the script swaps runs/N/out for a link to a host folder holding a forged metrics.json and a
    model; the host reads nothing through it, promotes nothing, and says so in one line."""
    elsewhere = tmp_path / "elsewhere"
    ws = checkout(tmp_path, IRIS + (
        "import json, pathlib\n"
        f"fake = pathlib.Path({str(elsewhere)!r})\n"
        "fake.mkdir()\n"
        "(fake / 'metrics.json').write_text(json.dumps({'val_accuracy': 1.0}))\n"))
    assert run_mlops("train", "--workspace", str(ws), "--runner", "local").returncode == 0
    out = ws / "runs" / "0001" / "out"
    shutil.rmtree(out)
    out.symlink_to(elsewhere)
    evaluated = run_mlops("evaluate", "--workspace", str(ws), "--threshold", "0.5")
    assert evaluated.returncode == 1 and evaluated.stderr.startswith("mlops: error:"), evaluated.stderr
    assert "symbolic link" in evaluated.stderr and not (ws / "best").exists()


FILL_OUTPUT = IRIS + ("import glob, os\nout = os.path.join(sorted(glob.glob(os.path.join(os.pardir, 'runs', '*', 'out')))[-1], "
                      "'filler.bin')\n"
                      "with open(out, 'wb') as handle:\n"
                      "    while True:\n        handle.write(b'x' * 1024 * 1024)\n        handle.flush()\n")


def test_a_run_that_fills_its_output_area_is_stopped_at_its_disk_limit(tmp_path: Path) -> None:
    """17.3 on the local runner (MLOPS_DISK_LIMIT): the attached train's watchdog stops the writer, the run fails
    naming the limit, what it wrote is removed and the workspace is free again."""
    ws = checkout(tmp_path, FILL_OUTPUT)
    trained = run_mlops("train", "--workspace", str(ws), "--runner", "local", env={"MLOPS_DISK_LIMIT": "30m"},
                        timeout=180)
    assert trained.returncode == 1, trained.stdout + trained.stderr
    record = run_json(ws)
    assert record["error"].startswith("stopped: it wrote more than 30 MiB"), record["error"]
    assert not (ws / "runs" / "0001" / "out" / "filler.bin").exists()
    assert (ws / "runs" / "0001" / "out" / "train.log").is_file()
    again = run_mlops("train", "--workspace", str(ws), "--runner", "local", env={"MLOPS_DISK_LIMIT": "30m"},
                      timeout=180)
    assert "already training" not in again.stderr, again.stderr
    assert run_json(ws, "0002")["error"].startswith("stopped: it wrote more than 30 MiB"), "the second run, alike"
    assert not (ws / "runs" / "0002" / "out" / "filler.bin").exists()


def test_monitor_stops_a_detached_run_past_its_disk_limit(tmp_path: Path) -> None:
    ws = checkout(tmp_path, FILL_OUTPUT.replace("while True:", "for _ in range(60):") +
                  "import time\nwhile True:\n    time.sleep(1)\n")
    started = run_mlops("train", "--workspace", str(ws), "--runner", "local", "--detach",
                        env={"MLOPS_DISK_LIMIT": "20m"})
    assert started.returncode == 0, started.stderr
    assert run_json(ws)["disk_limit_bytes"] == 20 * 1024 ** 2
    filler = ws / "runs" / "0001" / "out" / "filler.bin"
    wait_for(lambda: filler.is_file() and filler.stat().st_size >= 60 * 1024 ** 2, 60, "the script to write 60 MiB")
    checked = run_mlops("monitor", "--workspace", str(ws), "--once")
    assert "stopped" in checked.stdout and "20 MiB" in checked.stdout, checked.stdout
    assert run_json(ws)["status"] == "failed" and not filler.exists()


def test_disk_usage_counts_without_following_and_stops_early(tmp_path: Path) -> None:
    """A sparse file counts at its apparent size (the host may copy it), an empty file at one block, a link as
    itself (its target is never walked), and the walk stops once past the limit."""
    ws = Workspace(tmp_path / "ws").ensure()
    record = ws.new_run(entrypoint="train.py", disk_limit_bytes=50 * 1024 ** 2)
    out = ws.output_dir(record.id)
    with open(out / "sparse.bin", "wb") as handle:
        handle.truncate(64 * 1024 ** 2)
    (out / "empty").touch()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with open(elsewhere / "big.bin", "wb") as handle:
        handle.truncate(1024 ** 3)
    (out / "link").symlink_to(elsewhere)
    usage = ws.disk_usage(record.id)
    assert usage.entries == 3 and 64 * 1024 ** 2 + 4096 <= usage.bytes < 64 * 1024 ** 2 + 3 * 4096 + 1
    assert usage.excess(record.disk_limit_bytes) == ("wrote more than 50 MiB to its output area, code copy and "
                                                     "checkpoints (disk_limit in mlops.yaml)")
    assert usage.excess(None) is None and usage.excess(usage.bytes) is None
    assert ws.disk_usage(record.id, stop_above=1).entries == 1
    ws.update_run(record.id, status="running")
    finished = ws.finish_run(record.id, 0)
    assert finished.status.value == "failed" and finished.error.startswith("it wrote more than 50 MiB")
    assert sorted(p.name for p in out.iterdir()) == [] and (elsewhere / "big.bin").is_file()


def test_a_folder_chain_deeper_than_the_host_walks_is_refused_and_removed(tmp_path: Path) -> None:
    """Held-back idea (17): a script nests 3000 folders (Python 3.11's shutil.rmtree and os.walk recurse once per
    level and raise RecursionError; absolute paths pass PATH_MAX). The host neither walks nor copies it: the run
    fails naming the depth, and the chain is removed without recursion."""
    try:
        _deep_chain_is_refused(Workspace(tmp_path / "ws").ensure())
    finally:   # a chain left behind would break pytest's own clean-up of old temporary folders (shutil.rmtree)
        from mlops_cli.workspace import remove_tree

        remove_tree(tmp_path / "ws")


def _deep_chain_is_refused(ws: Workspace) -> None:
    short = ws.new_run(entrypoint="train.py", disk_limit_bytes=10 * 1024 ** 3)
    chain = ws.output_dir(short.id)
    for _ in range(70):
        chain = chain / "d"
    chain.mkdir(parents=True)
    assert (ws.disk_usage(short.id).unreadable or "").endswith("folders nested more than 64 deep")
    record = ws.new_run(entrypoint="train.py", disk_limit_bytes=10 * 1024 ** 3)
    ws.update_run(record.id, status="running")
    fd = os.open(ws.output_dir(record.id), os.O_RDONLY)
    for _ in range(3000):
        os.mkdir("d" * 100, dir_fd=fd)
        child = os.open("d" * 100, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)
    usage = ws.disk_usage(record.id)   # 100-character names: the path passes PATH_MAX before 64 levels
    assert usage.unreadable and usage.unreadable.endswith("File name too long")
    finished = ws.finish_run(record.id, 0)
    assert finished.status.value == "failed" and finished.error.startswith("it left a folder the host cannot")
    assert list(ws.output_dir(record.id).iterdir()) == []


def test_remove_tree_follows_no_link_and_opens_locked_folders(tmp_path: Path) -> None:
    from mlops_cli.workspace import remove_tree

    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "file").write_text("mine")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "data").write_text("x")
    (tree / "a" / "link").symlink_to(keep)
    (tree / "a" / "b").chmod(0)
    remove_tree(tree)
    assert not tree.exists() and (keep / "file").read_text() == "mine"
    link = tmp_path / "link"
    link.symlink_to(keep)
    remove_tree(link)
    assert not link.is_symlink() and (keep / "file").exists()
    remove_tree(tmp_path / "missing")
