"""mlops pull against real bare repositories: clone, update, force-push, local edits, and every error path."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import git, make_remote, run_mlops


def _push_change(remote: Path, tmp_path: Path, name: str, text: str, amend: bool = False) -> str:
    work = tmp_path / f"push-{name}-{len(list(tmp_path.iterdir()))}"
    git("clone", "-q", str(remote), str(work), cwd=tmp_path)
    (work / name).write_text(text)
    git("add", "-A", cwd=work)
    git("commit", "-q", *(["--amend", "--no-edit"] if amend else ["-m", f"add {name}"]), cwd=work)
    git("push", "-q", *(["--force"] if amend else []), "origin", "HEAD:main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def test_clone_then_update_then_force_push(tmp_path: Path, workspace: Path) -> None:
    remote = make_remote(tmp_path, {"train.py": "print('v1')\n"})
    first = run_mlops("pull", "-w", str(workspace), "--repo", str(remote))
    assert first.returncode == 0, first.stderr
    assert "(changed)" in first.stdout
    state = json.loads((workspace / "state.json").read_text())
    assert (workspace / "repo" / "train.py").read_text() == "print('v1')\n"
    assert state["branch"] == "main" and len(state["commit"]) == 40

    again = run_mlops("pull", "-w", str(workspace), "--repo", str(remote))
    assert again.returncode == 0 and "unchanged" in again.stdout

    new_commit = _push_change(remote, tmp_path, "extra.py", "x = 1\n")
    update = run_mlops("pull", "-w", str(workspace), "--repo", f"file://{remote}")
    assert update.returncode == 0, update.stderr
    assert new_commit[:12] in update.stdout and "changed" in update.stdout
    assert (workspace / "repo" / "extra.py").exists()

    rewritten = _push_change(remote, tmp_path, "extra.py", "x = 2\n", amend=True)
    forced = run_mlops("pull", "-w", str(workspace), "--repo", f"file://{remote}")
    assert forced.returncode == 0, forced.stderr
    assert json.loads((workspace / "state.json").read_text())["commit"] == rewritten
    assert (workspace / "repo" / "extra.py").read_text() == "x = 2\n"


def test_local_edits_are_discarded_with_a_warning(tmp_path: Path, workspace: Path) -> None:
    remote = make_remote(tmp_path, {"train.py": "print('pushed')\n"})
    assert run_mlops("pull", "-w", str(workspace), "--repo", str(remote)).returncode == 0
    (workspace / "repo" / "train.py").write_text("print('edited by hand')\n")
    (workspace / "repo" / "stray.txt").write_text("junk")
    result = run_mlops("pull", "-w", str(workspace), "--repo", str(remote))
    assert result.returncode == 0
    assert "warning: discarding local edits" in result.stderr and "train.py" in result.stderr
    assert (workspace / "repo" / "train.py").read_text() == "print('pushed')\n"
    assert not (workspace / "repo" / "stray.txt").exists()


def test_branch_option_follows_that_branch(tmp_path: Path, workspace: Path) -> None:
    remote = make_remote(tmp_path, {"train.py": "print('main')\n"})
    work = tmp_path / "dev"
    git("clone", "-q", str(remote), str(work), cwd=tmp_path)
    git("checkout", "-q", "-b", "dev", cwd=work)
    (work / "train.py").write_text("print('dev')\n")
    git("commit", "-qam", "dev", cwd=work)
    git("push", "-q", "origin", "dev", cwd=work)
    result = run_mlops("pull", "-w", str(workspace), "--repo", str(remote), "--branch", "dev")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("dev @")
    assert (workspace / "repo" / "train.py").read_text() == "print('dev')\n"


def _one_line_error(result, code: int, *words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlops: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


def test_unknown_repo(tmp_path: Path, workspace: Path) -> None:
    result = run_mlops("pull", "-w", str(workspace), "--repo", str(tmp_path / "nowhere.git"))
    _one_line_error(result, 2, "nowhere.git", "not a git repository")
    assert not (workspace / "repo").exists()


def test_not_a_git_repo(tmp_path: Path, workspace: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "train.py").write_text("")
    _one_line_error(run_mlops("pull", "-w", str(workspace), "--repo", str(plain)), 2, "not a git repository")


def test_unknown_branch(tmp_path: Path, workspace: Path) -> None:
    remote = make_remote(tmp_path, {"train.py": ""})
    result = run_mlops("pull", "-w", str(workspace), "--repo", str(remote), "--branch", "nope")
    _one_line_error(result, 2, "branch 'nope' does not exist")


def test_no_network(workspace: Path) -> None:
    result = run_mlops("pull", "-w", str(workspace), "--repo", "http://127.0.0.1:9/model.git")
    _one_line_error(result, 1, "cannot reach")


def test_credentials_in_the_url_are_not_recorded(tmp_path: Path, workspace: Path) -> None:
    from mlops_cli.adapters.git import redact_url

    assert redact_url("https://bot:s3cret@git.example.com/team/model.git") == "https://git.example.com/team/model.git"
    assert redact_url("/srv/git/model.git") == "/srv/git/model.git"
