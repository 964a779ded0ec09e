"""Jenkins' cron dialect (mlops_cli/jenkins/cron.py) against cases read from Jenkins core's CronTabTest and grammar
(jenkinsci/jenkins ff9430ee1dc6e319349a488650d914444fe141f3, core/src/test/java/hudson/scheduler/CronTabTest.java,
core/src/main/antlr4/hudson/scheduler/CrontabParser.g4), and `install` refusing a bad spec naming the option."""
from __future__ import annotations

import datetime as dt

import pytest
from conftest import run_mlops

from mlops_cli.errors import UsageError
from mlops_cli.jenkins import cron


def minutes(spec: str, seed: str, hour: int = 11) -> list[int]:
    tabs = cron.parse(spec, cron.Hash.from_seed(seed))
    return [m for m in range(60) if tabs.matches(dt.datetime(2013, 4, 3, hour, m))]


@pytest.mark.parametrize("spec", [
    "@yearly", "@weekly", "@midnight", "@monthly", "@daily", "@hourly", "@annually", "0 0 * 1-10/3 *",
    "0,30 * * * *", "15,45 3 * * *", "0 0 1 * 7", "0 23 * * 1-5", "H H(0-2) * * *", "H/15 * * * *",
    "H(0-59) H(0-23) H(1-31) H(1-12) H(0-7)", "H H(5-8) H/3 H(1-10)/4 *", "0 0 31 2 *",
    "# nightly\nH 2 * * *\n\nH 14 * * 1-5", "TZ=Europe/London\nH 3 * * *", "  H/5 *\t* * *  ",
])
def test_valid_specs(spec: str) -> None:
    assert cron.parse(spec).tabs


@pytest.mark.parametrize("spec, message", [
    ("H(0-3)/15 * * * *", 'line 1:9: 15 is an invalid value. Must be within 1 and 4'),
    ("H H(12-24) * * *", 'line 1:10: 24 is an invalid value. Must be within 0 and 23'),
    ("H(33-66) * * * *", 'line 1:8: 66 is an invalid value. Must be within 0 and 59'),
    ("*/0 * * * *", "step must be positive, but found 0"),
    ("5-1 * * * *", "You mean 1-5?"),
    ("60 * * * *", "60 is an invalid value. Must be within 0 and 59"),
    ("H H * * 8", "8 is an invalid value. Must be within 0 and 7"),
    ("H/61 * * * *", "61 is an invalid value. Must be within 1 and 60"),
    ("* * * *", "mismatched input '<EOF>'"),
    ("* * * * * *", "mismatched input ' '"),
    ("@every 5m", "token recognition error"),
    ("H * * JAN *", "token recognition error"),
    ("H 2 * * *\nevery day", 'Invalid input: "every day": line 2:0'),
    ("TZ=Mars/Olympus\nH * * * *", "Invalid or unsupported timezone 'Mars/Olympus'"),
])
def test_invalid_specs(spec: str, message: str) -> None:
    with pytest.raises(cron.CronError) as caught:
        cron.parse(spec)
    assert message in str(caught.value)


def test_hash_is_jenkins_own() -> None:
    """CronTabTest.repeatedHash and hashedMinute: the same minutes as Jenkins for the same seeds."""
    assert minutes("H * * * *\nH * * * *", "seed") == [35, 56]
    assert minutes("H * * * *", "stuff") == [56]
    assert minutes("@hourly", "junk") == [20]
    assert minutes("H/15 * * * *", "stuff") == [11, 26, 41, 56]


@pytest.mark.parametrize("value, expected", [
    (59, ({59}, {8}, set(range(3, 28, 3)), {4, 8})),  # CronTabTest.hashSkips...: a Hash answering n-1
    (1, ({1}, {6}, set(range(2, 27, 3)), {2, 6, 10})),  # ... and one answering 1
])
def test_hash_bits_like_crontabtest(value: int, expected: tuple) -> None:
    hash_ = cron.Hash(lambda n: n - 1 if value == 59 else 1)
    tab = cron.parse("H H(5-8) H/3 H(1-10)/4 *", hash_).tabs[0]
    assert tuple(set(f) for f in tab.fields[:4]) == expected


def test_matching_and_day_of_week() -> None:
    weekdays = cron.parse("0 23 * * 1-5")
    assert weekdays.matches(dt.datetime(2026, 12, 2, 23, 0))  # a Wednesday
    assert not weekdays.matches(dt.datetime(2026, 12, 6, 23, 0))  # a Sunday
    sunday = cron.parse("0 0 1 * 7")  # 7 is Sunday too
    assert sunday.matches(dt.datetime(2010, 8, 1, 0, 0))


def test_sanity_warnings() -> None:
    assert cron.parse("* * * * *").warnings() == [
        'Do you really mean "every minute" when you say "* * * * *"? Perhaps you meant "H * * * *" to poll once per hour']
    assert cron.parse("H/5 * * * *").warnings() == []
    assert cron.parse("0 3 */5 * *").warnings() == [
        "Short cycles in the day-of-month field will behave oddly near the end of a month"]


def test_check_spec_names_the_option() -> None:
    with pytest.raises(UsageError, match=r"--poll 'H/5 \* \*' is not a Jenkins cron spec"):
        cron.check_spec("H/5 * *", "--poll")
    with pytest.raises(UsageError, match="has no schedule line"):
        cron.check_spec("# nothing\n", "--monitor-schedule")


@pytest.mark.parametrize("option, spec", [("--poll", "H/5 * * *"), ("--monitor-schedule", "*/0 * * * *"),
                                          ("--poll", "@every 5m")])
def test_install_refuses_a_bad_schedule_before_rendering(tmp_path, option: str, spec: str) -> None:
    result = run_mlops("jenkins", "install", "--dry-run", "--out", str(tmp_path / "out"), "--repo",
                       "https://git.example.com/m.git", option, spec)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mlops: error: {option} ") and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_install_passes_on_jenkins_warning(tmp_path) -> None:
    result = run_mlops("jenkins", "install", "--dry-run", "--out", str(tmp_path / "out"), "--repo",
                       "https://git.example.com/m.git", "--monitor-schedule", "* * * * *", "--poll",
                       "# weekdays, business hours\nH/15 8-18 * * 1-5")
    assert result.returncode == 0, result.stderr
    assert 'mlops: warning: --monitor-schedule: Do you really mean "every minute"' in result.stderr
    assert "--poll" not in result.stderr
    assert "<spec># weekdays, business hours\nH/15 8-18 * * 1-5</spec>" in (tmp_path / "out" / "mlops-1-pull.xml").read_text()
