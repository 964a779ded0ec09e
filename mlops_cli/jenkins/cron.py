"""Jenkins' cron dialect, checked before a schedule goes into a job definition.

Jenkins parses `<spec>` of a TimerTrigger / SCMTrigger when it loads the job (`Trigger.readResolve`); an invalid
spec makes the trigger vanish while the upload still answers 200, so the job silently never runs. No Python
library speaks this dialect (`H`, `H(a-b)/n`, `@daily`, several lines, `#` comments, a first `TZ=` line), so
this is a small parser written from Jenkins core's grammar (`hudson/scheduler/CrontabParser.g4`,
`CrontabLexer.g4`), `BaseParser` (bounds, steps, hashing), `CronTabList.create` (lines, comments, TZ) and
`CronTab.checkSanity` (the "every minute" warning), and tested against cases of Jenkins' `CronTabTest`.

`Hash` is Jenkins' own (`hudson.scheduler.Hash.from`: MD5 of the job's full name seeding `java.util.Random`),
so `H` resolves to the minute Jenkins would pick, and the fake Jenkins of the tests fires timers when Jenkins would.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from collections.abc import Callable

from mlops_cli.errors import UsageError

LOWER = (0, 0, 1, 1, 0)
UPPER = (59, 23, 31, 12, 7)
ALIASES = {"yearly": "H H H H *", "annually": "H H H H *", "monthly": "H H H * *", "weekly": "H H * * H",
           "daily": "H H * * *", "midnight": "H H(0-2) * * *", "hourly": "H * * * *"}
_TOKEN = re.compile(r"(?P<num>[0-9]+)|(?P<ws>[ \t]+)|(?P<word>yearly|annually|monthly|weekly|daily|midnight|hourly)"
                    r"|(?P<sym>[-*/,@H()])")


class CronError(ValueError):
    """An invalid spec; the message reads like Jenkins' (`line 1:9: 15 is an invalid value...`)."""


class Hash:
    """hudson.scheduler.Hash: `from_seed(name)` is Jenkins' spread for a job, `zero()` picks the lowest value."""

    def __init__(self, next_int: Callable[[int], int]) -> None:
        self.next = next_int

    @classmethod
    def zero(cls) -> Hash:
        return cls(lambda n: 0)

    @classmethod
    def from_seed(cls, seed: str) -> Hash:
        digest = bytearray(hashlib.md5(seed.encode("utf-8"), usedforsecurity=False).digest())
        for i in range(8, len(digest)):
            digest[i % 8] ^= digest[i]
        value = int.from_bytes(digest[:8], "big")
        return cls(_JavaRandom(value).next_int)


class _JavaRandom:
    """java.util.Random's LCG, enough for nextInt(bound)."""

    _MULT, _MASK = 0x5DEECE66D, (1 << 48) - 1

    def __init__(self, seed: int) -> None:
        self.seed = (seed ^ self._MULT) & self._MASK

    def _next(self, bits: int) -> int:
        self.seed = (self.seed * self._MULT + 0xB) & self._MASK
        value = self.seed >> (48 - bits)
        return value - (1 << 32) if value >= 1 << 31 else value  # Java's (int) cast

    def next_int(self, bound: int) -> int:
        if bound & -bound == bound:
            return (bound * self._next(31)) >> 31
        while True:
            bits = self._next(31)
            value = bits % bound
            if -(1 << 31) <= bits - value + (bound - 1) < (1 << 31):
                return value


@dataclasses.dataclass(frozen=True)
class CronTab:
    """One line: the set of minutes, hours, days of month, months and days of week it fires on."""

    spec: str
    fields: tuple[frozenset[int], ...]

    def matches(self, when: dt.datetime) -> bool:
        minute, hour, day, month, weekday = self.fields
        return (when.minute in minute and when.hour in hour and when.day in day and when.month in month
                and (when.isoweekday() % 7) in weekday)

    def sanity(self) -> str | None:
        """Jenkins' first warning for a valid line: every minute, or short day-of-month cycles."""
        for index, values in enumerate(self.fields):
            if any(v not in values for v in range(LOWER[index], UPPER[index] + 1)):
                if index > 0:
                    return (f'Do you really mean "every minute" when you say "{self.spec}"? Perhaps you meant '
                            f'"H {self.spec.split(" ", 1)[1] if " " in self.spec else ""}" to poll once per hour')
                break
        days = sum(1 for d in range(1, 31) if d in self.fields[2])
        if 5 < days < 28:
            return "Short cycles in the day-of-month field will behave oddly near the end of a month"
        return None


@dataclasses.dataclass(frozen=True)
class CronTabList:
    tabs: tuple[CronTab, ...]
    timezone: str | None

    def matches(self, when: dt.datetime) -> bool:
        if self.timezone and when.tzinfo is not None:
            from zoneinfo import ZoneInfo

            when = when.astimezone(ZoneInfo(self.timezone))
        return any(tab.matches(when) for tab in self.tabs)

    def warnings(self) -> list[str]:
        return [w for w in (tab.sanity() for tab in self.tabs) if w]


class _Parser:
    def __init__(self, line: str, number: int, hash_: Hash) -> None:
        self.line, self.line_number, self.hash = line, number, hash_
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(line):
            match = _TOKEN.match(line, pos)
            if not match:
                self._fail(pos, f"token recognition error at: '{line[pos]}'")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(0), pos))
            pos = match.end()
        self.tokens.append(("eof", "<EOF>", len(line)))
        self.index = 0

    def _fail(self, pos: int, message: str) -> None:
        raise CronError(f"line {self.line_number}:{pos}: {message}")

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.index]

    def take(self, kind: str, text: str | None = None) -> str:
        token = self.peek()
        if token[0] != kind or (text is not None and token[1] != text):
            wanted = text or {"num": "a number", "ws": "a space", "eof": "the end of the line"}.get(kind, kind)
            self._fail(token[2], f"mismatched input '{token[1]}' expecting {wanted}")
        self.index += 1
        return token[1]

    def at(self, kind: str, text: str | None = None) -> bool:
        token = self.peek()
        return token[0] == kind and (text is None or token[1] == text)

    def parse(self) -> tuple[frozenset[int], ...]:
        if self.at("sym", "@"):
            self.take("sym", "@")
            word = self.take("word")
            self.take("eof")
            return _Parser(ALIASES[word], self.line_number, self.hash).parse()
        fields = []
        for field in range(5):
            if field:
                self.take("ws")
            fields.append(self.expr(field))
        self.take("eof")
        weekday = set(fields[4])
        if 7 in weekday:
            weekday.discard(7)
            weekday.add(0)
        fields[4] = frozenset(weekday)
        return tuple(fields)

    def expr(self, field: int) -> frozenset[int]:
        values = set(self.term(field))
        while self.at("sym", ","):
            self.take("sym", ",")
            values |= self.term(field)
        return frozenset(values)

    def number(self) -> int:
        return int(self.take("num"))

    def step(self) -> int:
        if self.at("sym", "/"):
            self.take("sym", "/")
            return self.number()
        return 1

    def error(self, message: str) -> None:
        self._fail(self.peek()[2], message)

    def check(self, value: int, field: int) -> None:
        if not LOWER[field] <= value <= UPPER[field]:
            self.error(f"{value} is an invalid value. Must be within {LOWER[field]} and {UPPER[field]}")

    def span(self, start: int, end: int, step: int, field: int) -> set[int]:
        self.check(start, field)
        self.check(end, field)
        if step <= 0:
            self.error(f"step must be positive, but found {step}")
        if start > end:
            self.error(f"You mean {end}-{start}?")
        return set(range(start, end + 1, step))

    def hashed(self, start: int, end: int, step: int, field: int) -> set[int]:
        self.check(start, field)
        self.check(end, field)
        if step > end - start + 1:
            self.error(f"{step} is an invalid value. Must be within 1 and {end - start + 1}")
        if step > 1:
            return set(range(self.hash.next(step) + start, end + 1, step))
        if step <= 0:
            self.error(f"step must be positive, but found {step}")
        return {start + self.hash.next(end + 1 - start)}

    def term(self, field: int) -> set[int]:
        if self.at("num"):
            start = self.number()
            if self.at("sym", "-"):
                self.take("sym", "-")
                end = self.number()
                return self.span(start, end, self.step(), field)
            self.check(start, field)
            return {start}
        if self.at("sym", "*"):
            self.take("sym", "*")
            return self.span(LOWER[field], UPPER[field], self.step(), field)
        if self.at("sym", "H"):
            self.take("sym", "H")
            if self.at("sym", "("):
                self.take("sym", "(")
                start = self.number()
                self.take("sym", "-")
                end = self.number()
                self.take("sym", ")")
                return self.hashed(start, end, self.step(), field)
            upper = 28 if field == 2 else 6 if field == 4 else UPPER[field]
            return self.hashed(LOWER[field], upper, self.step(), field)
        token = self.peek()
        self._fail(token[2], f"mismatched input '{token[1]}' expecting a number, '*' or 'H'")
        raise AssertionError


def parse(spec: str, hash_: Hash | None = None) -> CronTabList:
    """Parse a whole spec as `CronTabList.create` does; CronError names the line, as Jenkins' message does."""
    hash_ = hash_ or Hash.zero()
    tabs, timezone = [], None
    for number, raw in enumerate(re.split(r"\r?\n", spec), start=1):
        line = raw.strip()
        if number == 1 and line.startswith("TZ="):
            timezone = line[3:]
            if not _valid_timezone(timezone):
                raise CronError(f"Invalid or unsupported timezone '{timezone}'")
            continue
        if not line or line.startswith("#"):
            continue
        try:
            tabs.append(CronTab(line, _Parser(line, number, hash_).parse()))
        except CronError as exc:
            raise CronError(f'Invalid input: "{line}": {exc}') from None
    return CronTabList(tuple(tabs), timezone)


def _valid_timezone(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def check_spec(spec: str, option: str) -> list[str]:
    """Validate a schedule given as `option` before it is rendered: UsageError (exit 2) naming the option when
    Jenkins would drop the trigger; Jenkins' sanity warnings are returned."""
    try:
        tabs = parse(spec)
    except CronError as exc:
        raise UsageError(f"{option} {spec!r} is not a Jenkins cron spec: {exc}",
                         "five fields MINUTE HOUR DOM MONTH DOW, e.g. 'H/5 * * * *' or '@daily'") from None
    if not tabs.tabs:
        raise UsageError(f"{option} {spec!r} has no schedule line", "e.g. 'H/5 * * * *'")
    return [f"{option}: {warning}" for warning in tabs.warnings()]
