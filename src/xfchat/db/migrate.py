"""The migration runner: plain SQL pairs, checksums, an advisory lock.

Why our own and not yoyo or alembic: the rules are few and strict (files named
`NNNN_name.up.sql` / `.down.sql`, a `schema_migrations` table with version, name,
checksum and applied_at, refusal of unknown or edited migrations, one transaction per
migration, or none for a file that says so, under an advisory lock) and neither library
keeps that layout; this is about 300 lines on the driver we already use.

A migration runs without the statement timeout (it is no request: rewriting a large
table takes longer than a request may) and with a bounded lock wait, retried a few
times: a migration's ACCESS EXCLUSIVE request queued behind a long transaction would
stall every query of the running servers behind it for as long as it waited.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import asyncpg

from xfchat.db.queries import locks
from xfchat.db.queries import migrations as q

T = TypeVar("T")
FILE_RE = re.compile(r"(\d{4})_([a-z0-9_]+)\.(up|down)\.sql")
# A migration file whose first line is NO_TRANSACTION runs outside a transaction, one
# statement at a time (the parts between STATEMENT_BREAK lines), without the statement
# timeout (and, but for a CONCURRENTLY one, with the bounded lock wait, tried again):
# what PostgreSQL refuses inside one, such as CREATE INDEX CONCURRENTLY on a
# large table, which does not block writes while it builds. Each statement commits on
# its own, so make each one safe to run again (DROP INDEX CONCURRENTLY IF EXISTS before
# the CREATE: a build that failed leaves an invalid index that IF NOT EXISTS would keep):
# a failure leaves what ran before it, and the migration is recorded only once it ran
# whole.
NO_TRANSACTION = "-- xfchat: no transaction"
STATEMENT_BREAK = "-- xfchat: statement break"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "migrations"
# pg_advisory_lock key: "xfchat migrate" folded into 63 bits.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"xfchat migrate").digest()[:8], "big") >> 1
LOCK_POLL_S = 0.2  # how often a process that waits for another's migrations asks again
# ... saying so (and who holds the lock) when it starts waiting and every LOCK_REPORT_S,
# and giving up after LOCK_WAIT_S (README: the longest another's migrations may hold a
# start; an orchestrator starts it again).
LOCK_REPORT_S = 10.0
LOCK_WAIT_S = 600.0
# A migration's transaction waits at most LOCK_TIMEOUT_S for each lock; it is rolled
# back and tried again after LOCK_PAUSE_S (live traffic queued behind its request runs
# meanwhile), LOCK_ATTEMPTS times in all, before the migration fails.
LOCK_TIMEOUT_S = 5.0
LOCK_ATTEMPTS = 5
LOCK_PAUSE_S = 3.0
# A .down.sql that destroys data says what in a header comment line; `revert` refuses
# it unless told `destroy_data` (`xfchat migrate revert --destroy-data`). A down whose
# DROP or DELETE loses nothing kept (derived or transient rows) says why with KEEPS
# (tests/unit/test_house_rules.py holds every down to one of the two).
DESTROYS = "-- xfchat: destroys "
KEEPS = "-- xfchat: no data lost: "


class MigrationError(Exception):
    """The schema cannot be brought up to date; the message says why and what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up_path: Path
    down_path: Path

    @property
    def up_sql(self) -> str:
        return self.up_path.read_text(encoding="utf-8")

    @property
    def down_sql(self) -> str:
        return self.down_path.read_text(encoding="utf-8")

    @property
    def destroys(self) -> str | None:
        """What reverting it destroys, as its .down.sql's header says (None: nothing)."""
        for line in self.down_sql.removeprefix("\ufeff").splitlines():
            words = line.strip()
            if words.startswith(DESTROYS):
                return words.removeprefix(DESTROYS).strip() or "data"
            if words and not words.startswith("--"):
                return None
        return None

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.up_path.read_bytes()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class MigrationState:
    version: int
    name: str
    applied_at: datetime | None
    status: str  # "applied", "pending", "edited", "unknown"


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or DEFAULT_DIR
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    ups: dict[int, tuple[str, Path]] = {}
    downs: dict[int, Path] = {}
    for path in sorted(directory.iterdir()):
        match = FILE_RE.fullmatch(path.name)
        if not match:
            continue
        version, name, direction = int(match.group(1)), match.group(2), match.group(3)
        if direction == "up":
            if version in ups:
                raise MigrationError(f"two up migrations have version {version:04d}")
            ups[version] = (name, path)
        else:
            downs[version] = path
    migrations = []
    for version in sorted(ups):
        name, up = ups[version]
        if version not in downs:
            raise MigrationError(f"{up.name} has no matching .down.sql")
        migrations.append(Migration(version, name, up, downs[version]))
    return migrations


class Migrator:
    def __init__(
        self,
        conn: asyncpg.Connection,
        directory: Path | None = None,
        log: Callable[[str], None] = lambda _line: None,
        *,
        lock_timeout_s: float = LOCK_TIMEOUT_S,
        lock_attempts: int = LOCK_ATTEMPTS,
        lock_pause_s: float = LOCK_PAUSE_S,
        lock_wait_s: float = LOCK_WAIT_S,
        lock_report_s: float = LOCK_REPORT_S,
    ) -> None:
        self.conn = conn
        self.migrations = discover(directory)
        self.log = log
        self.lock_timeout_s = lock_timeout_s
        self.lock_attempts = max(1, lock_attempts)
        self.lock_pause_s = lock_pause_s
        self.lock_wait_s = lock_wait_s
        self.lock_report_s = lock_report_s

    async def _locked(self) -> None:
        # Lock first: two processes racing CREATE TABLE IF NOT EXISTS can collide. Wait
        # for it between statements, never in one: a statement waiting would hold a
        # snapshot, which a CREATE INDEX CONCURRENTLY of the process holding the lock
        # waits for (a deadlock).
        started = time.monotonic()
        report_at: float | None = None
        while not await locks.try_lock_session(self.conn, key=LOCK_KEY):
            now = time.monotonic()
            if now - started >= self.lock_wait_s:
                raise MigrationError(
                    f"gave up waiting {self.lock_wait_s:g} s for the migration lock, held by "
                    f"{await self._lock_holder()}: let its migrations finish (or end that "
                    "session), then start again"
                )
            if report_at is None or now >= report_at:
                waited = "waiting" if report_at is None else f"{now - started:.0f} s waiting"
                self.log(
                    f"{waited} for the migration lock, held by {await self._lock_holder()}"
                    f" (another process migrating?); giving up at {self.lock_wait_s:g} s"
                )
                report_at = now + self.lock_report_s
            await asyncio.sleep(LOCK_POLL_S)
        await q.create_schema_migrations(self.conn)

    async def _lock_holder(self) -> str:
        h = await q.get_advisory_lock_holder(self.conn, key=LOCK_KEY)
        if h is None:  # (released meanwhile)
            return "a session that has just let it go"
        if h.application_name is None:  # (its session ended meanwhile)
            return f"pid {h.pid} (a session that has just ended)"
        if h.state is None:  # (another role's session: see list_lock_holders)
            return (
                f"pid {h.pid} (application_name {h.application_name!r}, role {h.role!r};"
                " its state and start are hidden from this role, which pg_read_all_stats"
                " would show)"
            )
        since = h.backend_start.isoformat(timespec="seconds") if h.backend_start else "?"
        return (
            f"pid {h.pid} (application_name {h.application_name!r}, role {h.role!r}, "
            f"{h.state}, connected since {since})"
        )

    async def _unlock(self) -> None:
        await locks.unlock_session(self.conn, key=LOCK_KEY)

    async def status(self) -> list[MigrationState]:
        applied = {row.version: row for row in await q.list_applied_migrations(self.conn)}
        known = {m.version: m for m in self.migrations}
        out: list[MigrationState] = []
        for version in sorted(set(applied) | set(known)):
            row, mig = applied.get(version), known.get(version)
            if mig is None:
                assert row is not None
                out.append(MigrationState(version, row.name, row.applied_at, "unknown"))
            elif row is None:
                out.append(MigrationState(version, mig.name, None, "pending"))
            elif row.checksum != mig.checksum:
                out.append(MigrationState(version, mig.name, row.applied_at, "edited"))
            else:
                out.append(MigrationState(version, mig.name, row.applied_at, "applied"))
        return out

    async def check_consistent(self) -> list[MigrationState]:
        """Raise if the database has a migration this code does not know, or an applied
        migration whose file was edited since."""
        states = await self.status()
        for s in states:
            if s.status == "unknown":
                raise MigrationError(
                    f"the database has migration {s.version:04d}_{s.name}, which this code does "
                    "not know: the schema is newer than the code; deploy the newer code (or "
                    "revert the migration with the code that applied it)"
                )
            if s.status == "edited":
                raise MigrationError(
                    f"migration {s.version:04d}_{s.name} was edited after it was applied "
                    "(checksum mismatch); restore the file and add a new migration instead"
                )
        return states

    async def pending(self) -> list[Migration]:
        states = await self.check_consistent()
        todo = {s.version for s in states if s.status == "pending"}
        return [m for m in self.migrations if m.version in todo]

    async def run(self) -> list[Migration]:
        """Apply every pending migration in order, each in its own transaction (or
        statement by statement: NO_TRANSACTION). With nothing pending (the usual start)
        it takes no lock: a migration of another process's, or a session that holds the
        lock, does not hold it up (an edited or unknown migration is refused all the
        same)."""
        if not await self.pending():
            return []
        await self._locked()
        try:
            done = []
            for mig in await self.pending():
                elapsed_ms = await self._step(mig, up=True)
                self.log(f"applied {mig.label} ({elapsed_ms} ms)")
                done.append(mig)
            return done
        finally:
            await self._unlock()

    async def revert(self, count: int = 1, *, destroy_data: bool = False) -> list[Migration]:
        """Undo the last `count` applied migrations, newest first. Refused, with nothing
        reverted, when one of them destroys data (its .down.sql says so) unless
        `destroy_data`."""
        if count < 1:
            raise MigrationError(f"revert takes a count of 1 or more, not {count}")
        await self._locked()
        try:
            states = await self.check_consistent()
            applied = [s.version for s in states if s.status == "applied"]
            if count > len(applied):  # (was: all of them, without a word)
                raise MigrationError(
                    f"nothing reverted: {len(applied)} migration(s) applied, not {count};"
                    f" revert {len(applied)} to undo them all"
                    if applied
                    else "nothing reverted: no migration is applied"
                )
            by_version = {m.version: m for m in self.migrations}
            todo = [by_version[v] for v in sorted(applied, reverse=True)[:count]]
            destroying = [f"{m.label} destroys {m.destroys}" for m in todo if m.destroys]
            if destroying and not destroy_data:
                raise MigrationError(
                    f"nothing reverted: {'; '.join(destroying)}; take a backup, then revert "
                    "with --destroy-data to destroy it (or restore a backup instead)"
                )
            done = []
            for mig in todo:
                await self._step(mig, up=False)
                self.log(f"reverted {mig.label}")
                done.append(mig)
            return done
        finally:
            await self._unlock()

    async def _step(self, mig: Migration, *, up: bool) -> int:
        """Apply (or undo) one migration and its bookkeeping in one transaction, or, for
        a file marked NO_TRANSACTION, its statements one by one and then the
        bookkeeping."""
        sql = mig.up_sql if up else mig.down_sql
        subject = f"migration {mig.label}" if up else f"reverting {mig.label}"
        started = time.perf_counter()
        statements = _statements(sql)
        if statements is not None:
            await self._run_one_by_one(statements, subject, again="run" if up else "revert")
        what = "was rolled back" if statements is None else "was not recorded"

        async def once() -> int:
            async with self.conn.transaction():
                await q.set_local_migration_timeouts(
                    self.conn, lock_timeout_ms=self._lock_timeout_ms
                )
                if statements is None:
                    await self.conn.execute(sql)
                elapsed_ms = int((time.perf_counter() - started) * 1000)
                if up:
                    await q.insert_applied_migration(
                        self.conn,
                        version=mig.version,
                        name=mig.name,
                        checksum=mig.checksum,
                        execution_ms=elapsed_ms,
                    )
                else:
                    await q.delete_applied_migration(self.conn, version=mig.version)
            return elapsed_ms

        try:
            return await self._retrying_locks(once, subject, what)
        except asyncpg.PostgresError as exc:
            raise MigrationError(f"{subject} failed and {what}: {_describe(exc)}") from exc

    @property
    def _lock_timeout_ms(self) -> int:
        return max(1, int(self.lock_timeout_s * 1000))

    async def _retrying_locks(
        self, run: Callable[[], Awaitable[T]], subject: str, what: str, then: str = ""
    ) -> T:
        """`run` (which waits for each lock at most lock_timeout_s, then rolls back), tried
        again after each such wait, each said; the last refused in one line naming the
        sessions that likely held the lock (`then` added to it)."""
        for attempt in range(1, self.lock_attempts + 1):
            try:
                return await run()
            except asyncpg.LockNotAvailableError as exc:
                if attempt == self.lock_attempts:
                    refusal = await self._lock_refusal(subject, what)
                    raise MigrationError(refusal + then) from exc
                self.log(
                    f"{subject} waited {self.lock_timeout_s:g} s for a lock held by another "
                    f"session (attempt {attempt} of {self.lock_attempts}); rolled back, "
                    f"trying again in {self.lock_pause_s:g} s"
                )
                await asyncio.sleep(self.lock_pause_s)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _lock_refusal(self, subject: str, what: str) -> str:
        """The one line for a migration that never got its lock, naming the sessions
        that likely held it."""
        try:
            holders = await q.list_lock_holders(self.conn, held_s=self.lock_timeout_s)
        except asyncpg.PostgresError:
            holders = []
        named = ", ".join(_holder(h) for h in holders)
        unchanged = ", the schema as it was" if what == "was rolled back" else ""
        return (
            f"{subject} {what}{unchanged}: it waited {self.lock_attempts} times "
            f"{self.lock_timeout_s:g} s for a lock held by another session"
            f"{': ' + named if named else ''}; end that session's transaction (or let it "
            "end) and start again"
        )

    async def _run_one_by_one(self, statements: list[str], subject: str, again: str) -> None:
        """A NO_TRANSACTION file's statements, each committed on its own, without the
        statement timeout (an index build is long). One that builds or drops nothing
        CONCURRENTLY waits for each lock as a transaction's migration does (an ALTER
        TABLE there, 0033's, queued behind a long transaction would stall every query on
        its table): bounded, tried again, then refused. A CONCURRENTLY one waits without
        a bound: it waits for older transactions, blocking nobody."""
        await q.set_statement_timeout_off(self.conn)
        try:
            for done, statement in enumerate(statements):
                try:
                    await self._one_bounded(
                        statement, f"{subject}, statement {done + 1} of {len(statements)},", again
                    )
                except asyncpg.PostgresError as exc:
                    hint = (
                        " (a part holding several statements runs as one transaction:"
                        f" separate them with {STATEMENT_BREAK!r})"
                        if exc.sqlstate == "25001"  # active_sql_transaction
                        else ""
                    )
                    raise MigrationError(
                        f"{subject} failed at statement {done + 1} of {len(statements)},"
                        f" outside a transaction: the {done} before it stay done, and"
                        f" `xfchat migrate {again}` runs it again from its first statement:"
                        f" {_describe(exc)}{hint}"
                    ) from exc
        finally:
            if not self.conn.is_closed():
                await q.reset_statement_timeout(self.conn)

    async def _one_bounded(self, statement: str, subject: str, again: str) -> None:
        """One statement of a NO_TRANSACTION file, in its own implicit transaction (a
        lock wait that runs out rolls back all of it, or what a DO block did since its
        last COMMIT)."""
        sql = "\n".join(x for x in statement.splitlines() if not x.lstrip().startswith("--"))
        if re.search(r"\bconcurrently\b", sql, re.IGNORECASE):
            await q.set_lock_timeout(self.conn, lock_timeout_ms=0)  # (the role's too)
            await self.conn.execute(statement)
            return
        await q.set_lock_timeout(self.conn, lock_timeout_ms=self._lock_timeout_ms)
        await self._retrying_locks(
            lambda: self.conn.execute(statement),
            subject,
            "was not recorded",
            then=" (what ran before that statement stays done, and"
            f" `xfchat migrate {again}` runs it again from its first statement)",
        )

    async def is_current(self) -> bool:
        applied = {row.version: row.checksum for row in await q.list_applied_migrations(self.conn)}
        return applied == {m.version: m.checksum for m in self.migrations}


def add(name: str, directory: Path | None = None) -> tuple[Path, Path]:
    """Create the next empty migration pair."""
    directory = directory or DEFAULT_DIR
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise MigrationError("a migration needs a name of letters or digits")
    existing = discover(directory)
    version = (existing[-1].version + 1) if existing else 1
    up = directory / f"{version:04d}_{slug}.up.sql"
    down = directory / f"{version:04d}_{slug}.down.sql"
    up.write_text(f"-- {version:04d} {slug}: apply\n")
    down.write_text(f"-- {version:04d} {slug}: undo exactly what the .up.sql does\n")
    return up, down


def _statements(sql: str) -> list[str] | None:
    """The statements of a file marked NO_TRANSACTION, run one at a time; None for a
    file run in one transaction. A mark anywhere else is refused rather than ignored."""
    lines = sql.removeprefix("\ufeff").splitlines()
    marked = bool(lines) and lines[0].strip() == NO_TRANSACTION
    parts: list[list[str]] = [[]]
    for number, line in enumerate(lines[1:] if marked else lines, start=2 if marked else 1):
        words = line.strip()
        if words == NO_TRANSACTION or (words == STATEMENT_BREAK and not marked):
            raise MigrationError(
                f"line {number}: {words!r} counts only in a file whose first line is "
                f"{NO_TRANSACTION!r}"
            )
        if words == STATEMENT_BREAK:
            parts.append([])
        else:
            parts[-1].append(line)
    if not marked:
        return None
    return [text for text in ("\n".join(p).strip() for p in parts) if text]


def _holder(h: q.LockHolder) -> str:
    if h.state is None:  # (another role's session: see list_lock_holders)
        return (
            f"pid {h.pid} (application_name {h.application_name!r}, role {h.role!r}; how"
            " long its transaction has been open is hidden from this role, which"
            " pg_read_all_stats would show)"
        )
    since = h.xact_start.isoformat(timespec="seconds") if h.xact_start else "?"
    return (
        f"pid {h.pid} (application_name {h.application_name!r}, role {h.role!r}, {h.state},"
        f" transaction open since {since})"
    )


def _describe(exc: asyncpg.PostgresError) -> str:
    """The error on one line: its message's first, and its DETAIL (the operator's own
    diagnostic: which row broke a new constraint) with its line breaks as spaces."""
    detail = " ".join((getattr(exc, "detail", None) or "").split())
    msg = str(exc).strip().splitlines()[0]
    return f"{msg} ({detail})" if detail else msg
