"""The run store: pipeline runs, step runs and attempts, on SQLAlchemy Core.

SQLite (a file) is the embedded default for one machine; any SQLAlchemy URL works for
multi-node set-ups (PostgreSQL: ``postgresql+psycopg://...``).

The invariant everything rests on (SPEC STORE-1): a run is identified by
``(snapshot_id, orchestrator_run_id)`` under a unique constraint, and
:meth:`RunStore.get_or_create_run` is the only way a step attaches to a run. However many first
steps race, they converge on one row: the loser of an insert race reads the winner's row.

Core, not the ORM: every step process opens the store, writes a few rows and exits, so it gains
nothing from a unit of work or an identity map, and importing and configuring the ORM cost
more than a fork-launched step's whole budget (tens of ms of CPU; benchmarks/README.md). A step
makes two write transactions: :meth:`RunStore.attach_step` (attach + start the attempt) and
:meth:`RunStore.finish_attempt` (end it + derive the run's status).
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from orcakit import ExecutionStatus, StoreError
from orcakit.orchestrator import MAX_RUN_ID_LENGTH

from .faults import sqlite_folder, translate_sqlite_faults
from .run_ids import AMBIGUOUS_SHOWN, ambiguous_prefix
from .store_urls import RunStoreKind, run_store_kind, sqlite_database

S = ExecutionStatus


def _now() -> datetime:
    return datetime.now(timezone.utc)


#: The schema. Column types, nullability, defaults, constraint and index names are those the
#: earlier ORM declaration created, so stores made by an earlier orcakit open unchanged.
METADATA = MetaData()

RUNS = Table(
    "pipeline_runs",
    METADATA,
    Column("id", String(32), primary_key=True),
    Column("snapshot_id", String(64), nullable=False, index=True),
    # NULL while the run is a placeholder the client created before submission.
    Column("orchestrator_run_id", String(MAX_RUN_ID_LENGTH), nullable=True),
    Column("pipeline_name", String(255), nullable=False),
    Column("orchestrator", String(255), nullable=False, default=""),
    Column("status", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("reason", Text, nullable=True),
    Column("metadata_json", Text, nullable=False, default="{}"),
    UniqueConstraint("snapshot_id", "orchestrator_run_id", name="uq_run_per_snapshot"),
)

STEPS = Table(
    "step_runs",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", ForeignKey("pipeline_runs.id"), nullable=False, index=True),
    Column("step_name", String(255), nullable=False),
    Column("status", String(32), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("reason", Text, nullable=True),
    Column("outputs_json", Text, nullable=False, default="{}"),
    UniqueConstraint("run_id", "step_name", name="uq_step_per_run"),
)

ATTEMPTS = Table(
    "step_attempts",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("step_run_id", ForeignKey("step_runs.id"), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("status", String(32), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("reason", Text, nullable=True),
    Column("host", String(255), nullable=False, default=""),
    UniqueConstraint("step_run_id", "attempt", name="uq_attempt"),
)

# Who drives a run from a client process, and when it last said it was alive (see
# :mod:`.leases`). Its own table rather than columns on ``pipeline_runs``: a run store made by an
# earlier orcakit gains it through ``create_all`` alone (no ALTER TABLE, no race between
# processes migrating at once), and runs driven by something other than a client (an
# orchestrator pod) simply have no row, so no client ever mistakes them for orphans.
LEASES = Table(
    "run_leases",
    METADATA,
    Column("run_id", ForeignKey("pipeline_runs.id"), primary_key=True),
    # The backend's run ID as the driver chose it: known before any step attached, so that
    # whoever reaps the run can kill what the backend started even then.
    Column("orchestrator_run_id", String(MAX_RUN_ID_LENGTH), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    # What makes (host, pid) one process: boot ID, PID namespace and start time (see leases).
    Column("process", String(255), nullable=False),
    # Written with the database's clock (func.now()) and compared with it, so clock skew
    # between client machines does not matter.
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    # Counts heartbeats: the version a reaper's take-over is conditional on (comparing
    # timestamps would depend on how each dialect stores them).
    Column("beat", Integer, nullable=False, default=0),
)

_HOST = socket.gethostname()


@dataclass(frozen=True)
class RunRecord:
    id: str
    snapshot_id: str
    orchestrator_run_id: str | None
    pipeline_name: str
    orchestrator: str
    status: ExecutionStatus
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    reason: str | None
    metadata: dict[str, Any]
    #: The step outputs' loader (see :attr:`outputs`): set where the artifact store is known.
    _outputs: Any = field(default=None, repr=False, compare=False)

    @property
    def outputs(self) -> Mapping[str, Any]:
        """``{step name: output value}``, each read from the artifact store when looked up (a
        record returned by calling a pipeline or by ``run_snapshot``)."""
        if self._outputs is None:
            raise StoreError(
                f"run record {self.id} was read from the run store alone, which does not know where its outputs are",
                fix="use the record that calling the pipeline (or orcakit.reference.run_snapshot) returned, "
                    "or `orcakit runs show RUN --output json`",
            )
        return self._outputs


@dataclass(frozen=True)
class StepRecord:
    step_name: str
    status: ExecutionStatus
    attempts: int
    started_at: datetime | None
    ended_at: datetime | None
    reason: str | None
    outputs: dict[str, str]


@dataclass(frozen=True)
class AttemptRecord:
    step_name: str
    attempt: int
    status: ExecutionStatus
    started_at: datetime
    ended_at: datetime | None
    reason: str | None
    host: str


@dataclass(frozen=True)
class LeaseRecord:
    """A run's driver lease; ``age`` is seconds since its last heartbeat, on the database's clock."""

    run_id: str
    orchestrator_run_id: str
    host: str
    pid: int
    process: str
    heartbeat_at: datetime
    beat: int
    age: float


def _run_record(row: Any) -> RunRecord:
    """From a ``pipeline_runs`` row (or anything with its columns as attributes)."""
    return RunRecord(
        id=row.id,
        snapshot_id=row.snapshot_id,
        orchestrator_run_id=row.orchestrator_run_id,
        pipeline_name=row.pipeline_name,
        orchestrator=row.orchestrator,
        status=ExecutionStatus(row.status),
        created_at=_aware(row.created_at),
        started_at=_aware(row.started_at),
        ended_at=_aware(row.ended_at),
        reason=row.reason,
        metadata=json.loads(row.metadata_json or "{}"),
    )


def _step_record(row: Any) -> StepRecord:
    return StepRecord(
        step_name=row.step_name,
        status=ExecutionStatus(row.status),
        attempts=row.attempts,
        started_at=_aware(row.started_at),
        ended_at=_aware(row.ended_at),
        reason=row.reason,
        outputs=json.loads(row.outputs_json or "{}"),
    )


def _aware(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes; everything stored is UTC.
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


def _engine(url: str, immediate: bool = True, set_wal: bool = True) -> Engine:
    kind = run_store_kind(url)
    if kind is not RunStoreKind.NETWORK:
        if kind is RunStoreKind.SQLITE_FILE:
            sqlite_folder(sqlite_database(url))
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
        if kind is RunStoreKind.SQLITE_FILE:  # a corrupt, read-only or locked file: a StoreError that says so
            translate_sqlite_faults(engine, sqlite_database(url))

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection, _record):
            # Autocommit at the driver level, so that the "begin" hook below owns transactions.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if set_wal:  # persistent in the file: whoever creates the store sets it; steps need not
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):
            # Writers: IMMEDIATE takes the write lock up front, so concurrent writers queue on the
            # busy timeout instead of failing with SQLITE_BUSY when a read lock cannot be
            # upgraded. Readers: a deferred transaction, which in WAL mode never blocks a writer.
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except Exception as exc:  # bad URL, missing driver
        raise StoreError(
            f"cannot open run store {redact_url(url)}: {exc}",
            fix="use sqlite:///path/to/runs.db, or postgresql+psycopg://user:pass@host/db with orcakit[postgres] installed",
        ) from exc


def redact_url(url: str) -> str:
    """The URL with any password replaced, for logs and errors (SPEC SEC-1)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


@dataclass(frozen=True)
class _Finished:
    """:meth:`RunStore._start_attempt`'s answer for a step that already ended: raised by the
    caller once the transaction (which may have taken over the run) has committed."""

    status: str

    def error(self, run_id: str, step_name: str) -> StoreError:
        return StoreError(
            f"step {step_name!r} of run {run_id} already ended {self.status.upper()}; it cannot start again",
            why="a step runs at most once per attempt, and a finished step is never re-run within its run",
            fix="start a new run",
        )


class _Values(dict):
    """Column values as attributes, for :func:`_run_record` on rows this process just wrote."""

    __getattr__ = dict.__getitem__


class RunStore:
    """Records of runs, steps and attempts. Safe for concurrent use from many processes."""

    def __init__(self, url: str, create_tables: bool = True) -> None:
        """``create_tables=False`` skips the schema check: for step processes, whose client has
        already opened (and so created) the store."""
        self.url = url
        self._engine = _engine(url, set_wal=create_tables)
        self._read_engine: Engine | None = None
        if not create_tables:
            return
        try:
            METADATA.create_all(self._engine)
        except IntegrityError:  # another process created the tables at the same moment
            pass
        except OperationalError as exc:
            if "already exists" not in str(exc):
                raise StoreError(
                    f"cannot use run store {redact_url(url)}: {exc.orig}",
                    fix="check the URL, that the server is up and that the user may create tables",
                ) from exc

    def close(self) -> None:
        self._engine.dispose()
        if self._read_engine is not None:
            self._read_engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (on SQLite, BEGIN IMMEDIATE: see :func:`_engine`)."""
        with self._engine.begin() as connection:
            yield connection

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection for reads only (on SQLite: deferred transactions, so polling a run's
        progress never queues behind the step processes that write it)."""
        if self._read_engine is None:
            self._read_engine = (
                self._engine if run_store_kind(self.url) is RunStoreKind.NETWORK else _engine(self.url, immediate=False)
            )
        with self._read_engine.connect() as connection:
            yield connection

    def warm_up(self) -> None:
        """Pay once, here, what a process otherwise pays on its first use of the store (the SQL
        dialect, compiling each statement a step runs: milliseconds). A fork server calls this
        so that every forked step inherits a warm engine (its compiled-statement cache). Every
        statement runs inside a transaction that is rolled back — nothing is written — and the
        connections are closed afterwards, so none crosses a fork."""
        with self._engine.connect() as connection:
            transaction = connection.begin()

            @contextmanager
            def savepoint() -> Iterator[Connection]:
                with connection.begin_nested():
                    yield connection

            self._write = savepoint  # the same statements, in the rolled-back transaction
            try:
                run = self.create_placeholder_run("warm-up", "warm-up", "warm-up")
                # the two calls a step makes (StepRunner.run_step)
                run, attempt = self.attach_step("warm-up", "warm-up", "warm-up", "warm-up", run.id, "warm-up")
                self.finish_attempt(
                    run.id, "warm-up", attempt, succeeded=True, total_attempts=1, outputs={"output": "-"}, finalize=["warm-up"]
                )
            finally:
                del self._write  # the class's own method again
                transaction.rollback()
        self.step("warm-up", "warm-up")  # the read path, on the reader engine
        self.close()

    # -- runs --------------------------------------------------------------------------------

    def create_placeholder_run(self, snapshot_id: str, pipeline_name: str, orchestrator: str) -> RunRecord:
        """The run the client creates before submission; the first step takes it over."""
        values = _Values(
            id=uuid.uuid4().hex, snapshot_id=snapshot_id, orchestrator_run_id=None, pipeline_name=pipeline_name,
            orchestrator=orchestrator, status=S.INITIALIZING.value, created_at=_now(), started_at=None, ended_at=None,
            reason=None, metadata_json="{}",
        )
        with self._write() as connection:
            connection.execute(insert(RUNS).values(**values))
        return _run_record(values)

    def get_or_create_run(
        self, snapshot_id: str, orchestrator_run_id: str, pipeline_name: str, orchestrator: str = "",
        placeholder_id: str | None = None,
    ) -> RunRecord:
        """The run for ``(snapshot_id, orchestrator_run_id)``: found, or the submission's
        placeholder (``placeholder_id``) taken over, or created. Race-safe: concurrent callers
        all get the same run."""
        return self._attach(snapshot_id, orchestrator_run_id, pipeline_name, orchestrator, placeholder_id, None)[0]

    def attach_step(
        self, snapshot_id: str, orchestrator_run_id: str, pipeline_name: str, orchestrator: str,
        placeholder_id: str | None, step_name: str,
    ) -> tuple[RunRecord, int]:
        """:meth:`get_or_create_run` then :meth:`start_attempt`, in one transaction: a step's
        first write takes the write lock once, not twice."""
        return self._attach(snapshot_id, orchestrator_run_id, pipeline_name, orchestrator, placeholder_id, step_name)

    def _attach(
        self, snapshot_id: str, orchestrator_run_id: str, pipeline_name: str, orchestrator: str,
        placeholder_id: str | None, step_name: str | None,
    ) -> tuple[RunRecord, Any]:
        for _ in range(50):
            try:
                with self._write() as connection:
                    run = self._get_or_create_run(
                        connection, snapshot_id, orchestrator_run_id, pipeline_name, orchestrator, placeholder_id
                    )
                    attempt = None if step_name is None else self._start_attempt(connection, run.id, step_name)
            except IntegrityError:
                # Lost the insert race: go round again and read the winner's row.
                continue
            if isinstance(attempt, _Finished):
                raise attempt.error(run.id, step_name)
            return run, attempt
        raise StoreError(
            f"could not attach to run ({snapshot_id}, {orchestrator_run_id!r}) after 50 tries",
            fix="check the run store is not being rewritten concurrently by something other than orcakit",
        )

    def _get_or_create_run(
        self, connection: Connection, snapshot_id: str, orchestrator_run_id: str, pipeline_name: str,
        orchestrator: str, placeholder_id: str | None,
    ) -> RunRecord:
        found = connection.execute(
            select(RUNS).where(RUNS.c.snapshot_id == snapshot_id, RUNS.c.orchestrator_run_id == orchestrator_run_id)
        ).first()
        if found is not None:
            return _run_record(found)
        now = _now()
        if placeholder_id is not None:
            # Conditional update: only one racer can turn NULL into its ID.
            taken = connection.execute(
                update(RUNS)
                .where(RUNS.c.id == placeholder_id, RUNS.c.snapshot_id == snapshot_id, RUNS.c.orchestrator_run_id.is_(None))
                .values(orchestrator_run_id=orchestrator_run_id, status=S.RUNNING.value, started_at=now)
            ).rowcount
            if taken == 1:
                return _run_record(connection.execute(select(RUNS).where(RUNS.c.id == placeholder_id)).one())
        values = _Values(
            id=uuid.uuid4().hex, snapshot_id=snapshot_id, orchestrator_run_id=orchestrator_run_id,
            pipeline_name=pipeline_name, orchestrator=orchestrator, status=S.RUNNING.value,
            created_at=now, started_at=now, ended_at=None, reason=None, metadata_json="{}",
        )
        connection.execute(insert(RUNS).values(**values))  # a lost insert race raises IntegrityError
        return _run_record(values)

    def get_run(self, run_id: str) -> RunRecord:
        with self._read() as connection:
            row = connection.execute(select(RUNS).where(RUNS.c.id == run_id)).first()
            if row is None and run_id:
                # autoescape: run IDs are hex, but a typed '_' or '%' must not act as a wildcard.
                query = select(RUNS).where(RUNS.c.id.startswith(run_id, autoescape=True))
                matches = connection.execute(query.order_by(RUNS.c.created_at.desc()).limit(AMBIGUOUS_SHOWN + 1)).all()
                if len(matches) > 1:
                    raise ambiguous_prefix(run_id, [_run_record(match) for match in matches])
                row = matches[0] if matches else None
            if row is None:
                raise StoreError(f"no run {run_id!r} in the run store", fix="list runs with `orcakit runs list`")
            return _run_record(row)

    def find_run(self, snapshot_id: str, orchestrator_run_id: str) -> RunRecord | None:
        with self._read() as connection:
            row = connection.execute(
                select(RUNS).where(RUNS.c.snapshot_id == snapshot_id, RUNS.c.orchestrator_run_id == orchestrator_run_id)
            ).first()
            return None if row is None else _run_record(row)

    def list_runs(self, limit: int = 50, snapshot_id: str | None = None) -> list[RunRecord]:
        with self._read() as connection:
            query = select(RUNS).order_by(RUNS.c.created_at.desc()).limit(limit)
            if snapshot_id is not None:
                query = query.where(RUNS.c.snapshot_id == snapshot_id)
            return [_run_record(row) for row in connection.execute(query)]

    def set_run_status(self, run_id: str, status: ExecutionStatus, reason: str | None = None, metadata: dict | None = None) -> RunRecord:
        """Move a run to ``status`` if the transition is allowed (terminal statuses stick)."""
        with self._write() as connection:
            row = connection.execute(select(RUNS).where(RUNS.c.id == run_id).with_for_update()).first()
            if row is None:
                raise StoreError(f"no run {run_id!r} in the run store")
            changes: dict[str, Any] = {}
            if ExecutionStatus(row.status).can_become(status):
                changes["status"] = status.value
                if status is S.RUNNING and row.started_at is None:
                    changes["started_at"] = _now()
                if status.is_finished and row.ended_at is None:
                    changes["ended_at"] = _now()
                if reason:
                    changes["reason"] = reason
            if metadata:
                changes["metadata_json"] = json.dumps({**json.loads(row.metadata_json or "{}"), **metadata}, default=str)
            if changes:
                connection.execute(update(RUNS).where(RUNS.c.id == run_id).values(**changes))
            return _run_record(_Values({**row._asdict(), **changes}))

    # -- the one stop channel ----------------------------------------------------------------

    def request_stop(self, run_id: str) -> RunRecord:
        """Ask whichever process drives the run to stop it: the run moves to STOPPING (a
        finished run stays as it is). Every reference driver polls for this, so a stop works
        from any process that can open the run store: ``orcakit runs stop``, another client,
        a scheduler."""
        return self.set_run_status(run_id, S.STOPPING)

    def stop_requested(self, run_id: str) -> bool:
        """Whether someone asked for the run to stop (see :meth:`request_stop`)."""
        return self.get_run(run_id).status in (S.STOPPING, S.CANCELLING)

    def finalize_run(self, run_id: str, step_names: list[str] | None = None, stopped: bool = False) -> RunRecord:
        """Derive the run's status from its steps (SPEC STATUS-3) and store it.

        With ``step_names`` (the snapshot's steps), steps without a record count as not finished.
        """
        with self._write() as connection:
            return self._finalize_run(connection, run_id, step_names, stopped)

    def _finalize_run(self, connection: Connection, run_id: str, step_names: list[str] | None, stopped: bool = False) -> RunRecord:
        row = connection.execute(select(RUNS).where(RUNS.c.id == run_id).with_for_update()).one()
        steps = {
            name: ExecutionStatus(status)
            for name, status in connection.execute(select(STEPS.c.step_name, STEPS.c.status).where(STEPS.c.run_id == run_id))
        }
        names = step_names if step_names is not None else list(steps)
        statuses = [steps.get(name, S.INITIALIZING) for name in names]
        if not all(status.is_finished for status in statuses):
            status = S.RUNNING
        elif any(status is S.FAILED for status in statuses):
            status = S.FAILED
        elif stopped or any(status is S.STOPPED for status in statuses):
            status = S.STOPPED
        else:
            status = S.COMPLETED
        current = ExecutionStatus(row.status)
        changes: dict[str, Any] = {}
        if current != status and current.can_become(status):
            changes["status"] = status.value
            if status.is_finished:
                changes["ended_at"] = _now()
            if status is S.FAILED:
                failed = [name for name, s in zip(names, statuses) if s is S.FAILED]
                changes["reason"] = f"step(s) failed: {', '.join(failed)}"
            connection.execute(update(RUNS).where(RUNS.c.id == run_id).values(**changes))
        return _run_record(_Values({**row._asdict(), **changes}))

    # -- driver leases (see .leases) ---------------------------------------------------------

    def claim_lease(self, run_id: str, orchestrator_run_id: str, host: str, pid: int, process: str) -> None:
        """Record that this process (``host``, ``pid``, ``process``) drives ``run_id``."""
        with self._write() as connection:
            connection.execute(delete(LEASES).where(LEASES.c.run_id == run_id))
            connection.execute(insert(LEASES).values(
                run_id=run_id, orchestrator_run_id=orchestrator_run_id, host=host, pid=pid, process=process,
                heartbeat_at=func.now(), beat=0,
            ))

    def renew_lease(self, run_id: str, pid: int, process: str) -> bool:
        """Heartbeat: False when the lease is no longer this process's (a reaper took it over)."""
        with self._write() as connection:
            return connection.execute(
                update(LEASES)
                .where(LEASES.c.run_id == run_id, LEASES.c.pid == pid, LEASES.c.process == process)
                .values(heartbeat_at=func.now(), beat=LEASES.c.beat + 1)
            ).rowcount == 1

    def take_over_lease(self, lease: LeaseRecord, host: str, pid: int, process: str) -> bool:
        """Move ``lease`` to a reaper, only if it is unchanged since it was read: of two
        processes that found the same orphan, exactly one reaps it."""
        with self._write() as connection:
            return connection.execute(
                update(LEASES)
                .where(
                    LEASES.c.run_id == lease.run_id, LEASES.c.pid == lease.pid,
                    LEASES.c.process == lease.process, LEASES.c.beat == lease.beat,
                )
                .values(host=host, pid=pid, process=process, heartbeat_at=func.now(), beat=lease.beat + 1)
            ).rowcount == 1

    def release_lease(self, run_id: str, pid: int, process: str) -> None:
        """The driver is done with the run (it is terminal): drop its lease."""
        with self._write() as connection:
            connection.execute(
                delete(LEASES).where(LEASES.c.run_id == run_id, LEASES.c.pid == pid, LEASES.c.process == process)
            )

    def leased_unfinished_runs(self, run_ids: list[str] | None = None) -> list[tuple[RunRecord, LeaseRecord]]:
        """Unfinished runs that a client process drives (or drove), with their leases: the
        only candidates for orphans. One indexed query, so every client can afford it."""
        unfinished = [status.value for status in ExecutionStatus if not status.is_finished]
        lease_columns = [column.label(f"lease_{column.name}") for column in LEASES.c]
        with self._read() as connection:
            query = (
                select(RUNS, *lease_columns)
                .join(LEASES, LEASES.c.run_id == RUNS.c.id)
                .where(RUNS.c.status.in_(unfinished))
            )
            if run_ids is not None:
                query = query.where(RUNS.c.id.in_(run_ids))
            rows = connection.execute(query).all()
            if not rows:
                return []
            now = _aware(connection.execute(select(func.now())).scalar())
        return [
            (_run_record(row), LeaseRecord(
                run_id=row.lease_run_id, orchestrator_run_id=row.lease_orchestrator_run_id, host=row.lease_host,
                pid=row.lease_pid, process=row.lease_process, heartbeat_at=_aware(row.lease_heartbeat_at),
                beat=row.lease_beat, age=(now - _aware(row.lease_heartbeat_at)).total_seconds(),
            ))
            for row in rows
        ]

    # -- steps -------------------------------------------------------------------------------

    def start_attempt(self, run_id: str, step_name: str) -> int:
        """Record a new attempt of a step (RUNNING) and return its number, counting from 1."""
        with self._write() as connection:
            attempt = self._start_attempt(connection, run_id, step_name)
        if isinstance(attempt, _Finished):
            raise attempt.error(run_id, step_name)
        return attempt

    def _start_attempt(self, connection: Connection, run_id: str, step_name: str) -> int | _Finished:
        now = _now()
        step = connection.execute(
            select(STEPS.c.id, STEPS.c.status, STEPS.c.attempts)
            .where(STEPS.c.run_id == run_id, STEPS.c.step_name == step_name)
            .with_for_update()
        ).first()
        if step is None:
            attempt = 1
            step_id = connection.execute(
                insert(STEPS).values(
                    run_id=run_id, step_name=step_name, status=S.RUNNING.value, attempts=attempt, started_at=now, outputs_json="{}"
                )
            ).inserted_primary_key[0]
        elif ExecutionStatus(step.status).is_finished:
            return _Finished(step.status)
        else:
            step_id, attempt = step.id, step.attempts + 1
            connection.execute(update(STEPS).where(STEPS.c.id == step_id).values(attempts=attempt, status=S.RUNNING.value, reason=None))
        connection.execute(
            insert(ATTEMPTS).values(step_run_id=step_id, attempt=attempt, status=S.RUNNING.value, started_at=now, host=_HOST)
        )
        return attempt

    def finish_attempt(
        self,
        run_id: str,
        step_name: str,
        attempt: int,
        *,
        succeeded: bool,
        total_attempts: int,
        reason: str | None = None,
        outputs: dict[str, str] | None = None,
        final_status: ExecutionStatus | None = None,
        finalize: list[str] | None = None,
    ) -> ExecutionStatus:
        """End an attempt. A failed attempt leaves the step RETRYING while attempts remain, else
        FAILED (SPEC RETRY-1). ``final_status`` (e.g. STOPPED) overrides that rule.

        With ``finalize`` (the snapshot's step names), the run's status is then derived as by
        :meth:`finalize_run`, in the same transaction."""
        with self._write() as connection:
            status = self._finish_attempt(
                connection, run_id, step_name, attempt, succeeded, total_attempts, reason, outputs, final_status
            )
            if finalize is not None:
                self._finalize_run(connection, run_id, finalize)
            return status

    def _finish_attempt(
        self, connection: Connection, run_id: str, step_name: str, attempt: int, succeeded: bool, total_attempts: int,
        reason: str | None, outputs: dict[str, str] | None, final_status: ExecutionStatus | None,
    ) -> ExecutionStatus:
        now = _now()
        if final_status is not None:
            status = final_status
        elif succeeded:
            status = S.COMPLETED
        else:
            status = S.RETRYING if attempt < total_attempts else S.FAILED
        attempt_status = (S.COMPLETED if succeeded else (final_status or S.FAILED)).value
        step_changes: dict[str, Any] = {"status": status.value, "reason": reason}
        if status.is_finished:
            step_changes["ended_at"] = now
        if outputs:
            step_changes["outputs_json"] = json.dumps(outputs)
        # The step's own path (its attempt recorded RUNNING by attach_step): two statements, the
        # conditional update proving that the attempt was there and unfinished. Anything else
        # (a launcher recording an attempt that died unrecorded, or one already ended) takes
        # the general path below.
        step_id = select(STEPS.c.id).where(STEPS.c.run_id == run_id, STEPS.c.step_name == step_name).scalar_subquery()
        ended = connection.execute(
            update(ATTEMPTS)
            .where(ATTEMPTS.c.step_run_id == step_id, ATTEMPTS.c.attempt == attempt, ATTEMPTS.c.status == S.RUNNING.value)
            .values(status=attempt_status, ended_at=now, reason=reason)
        ).rowcount
        if ended == 1:
            connection.execute(
                update(STEPS).where(STEPS.c.run_id == run_id, STEPS.c.step_name == step_name).values(**step_changes)
            )
            return status
        step = connection.execute(
            select(STEPS.c.id, STEPS.c.status, STEPS.c.attempts)
            .where(STEPS.c.run_id == run_id, STEPS.c.step_name == step_name)
            .with_for_update()
        ).first()
        record = None
        if step is None:  # the step died before its entrypoint could record it
            step_id = connection.execute(
                insert(STEPS).values(
                    run_id=run_id, step_name=step_name, status=S.RUNNING.value, attempts=attempt, started_at=now, outputs_json="{}"
                )
            ).inserted_primary_key[0]
        else:
            step_id = step.id
            record = connection.execute(
                select(ATTEMPTS.c.status).where(ATTEMPTS.c.step_run_id == step_id, ATTEMPTS.c.attempt == attempt)
            ).first()
            if record is not None and ExecutionStatus(record.status).is_finished:
                return ExecutionStatus(step.status)  # already recorded (e.g. by the entrypoint)
        if record is None:  # the attempt died before its entrypoint recorded it
            connection.execute(insert(ATTEMPTS).values(step_run_id=step_id, attempt=attempt, status=S.RUNNING.value, started_at=now, host=""))
        connection.execute(
            update(ATTEMPTS)
            .where(ATTEMPTS.c.step_run_id == step_id, ATTEMPTS.c.attempt == attempt)
            .values(status=attempt_status, ended_at=now, reason=reason)
        )
        if step is not None and step.attempts < attempt:
            step_changes["attempts"] = attempt
        connection.execute(update(STEPS).where(STEPS.c.id == step_id).values(**step_changes))
        return status

    def mark_steps(self, run_id: str, step_names: list[str], status: ExecutionStatus, reason: str) -> None:
        """Give steps that never ran (or were stopped) a terminal status such as SKIPPED/STOPPED."""
        with self._write() as connection:
            existing = {
                row.step_name: row
                for row in connection.execute(
                    select(STEPS.c.id, STEPS.c.step_name, STEPS.c.status)
                    .where(STEPS.c.run_id == run_id, STEPS.c.step_name.in_(step_names))
                )
            }
            now = _now()
            for name in step_names:
                row = existing.get(name)
                if row is None:
                    connection.execute(insert(STEPS).values(
                        run_id=run_id, step_name=name, status=status.value, attempts=0, ended_at=now, reason=reason,
                        outputs_json="{}",
                    ))
                elif not ExecutionStatus(row.status).is_finished:
                    connection.execute(
                        update(STEPS).where(STEPS.c.id == row.id).values(status=status.value, reason=reason, ended_at=now)
                    )
                    unfinished = [s.value for s in ExecutionStatus if not s.is_finished]
                    connection.execute(
                        update(ATTEMPTS)
                        .where(ATTEMPTS.c.step_run_id == row.id, ATTEMPTS.c.status.in_(unfinished))
                        .values(status=status.value, ended_at=now, reason=reason)
                    )

    def steps(self, run_id: str) -> dict[str, StepRecord]:
        with self._read() as connection:
            rows = connection.execute(select(STEPS).where(STEPS.c.run_id == run_id).order_by(STEPS.c.id))
            return {row.step_name: _step_record(row) for row in rows}

    def step(self, run_id: str, step_name: str) -> StepRecord | None:
        with self._read() as connection:
            row = connection.execute(select(STEPS).where(STEPS.c.run_id == run_id, STEPS.c.step_name == step_name)).first()
            return None if row is None else _step_record(row)

    def attempts(self, run_id: str) -> Iterator[AttemptRecord]:
        with self._read() as connection:
            query = (
                select(STEPS.c.step_name, ATTEMPTS)
                .join(ATTEMPTS, ATTEMPTS.c.step_run_id == STEPS.c.id)
                .where(STEPS.c.run_id == run_id)
                .order_by(STEPS.c.step_name, ATTEMPTS.c.attempt)
            )
            rows = connection.execute(query).all()
        for row in rows:
            yield AttemptRecord(
                step_name=row.step_name,
                attempt=row.attempt,
                status=ExecutionStatus(row.status),
                started_at=_aware(row.started_at),
                ended_at=_aware(row.ended_at),
                reason=row.reason,
                host=row.host,
            )
