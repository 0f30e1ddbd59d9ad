"""The run store: pipeline runs, step runs and attempts, on SQLAlchemy.

SQLite (a file) is the embedded default for one machine; any SQLAlchemy URL works for
multi-node set-ups (PostgreSQL: ``postgresql+psycopg://...``).

The invariant everything rests on (SPEC STORE-1): a run is identified by
``(snapshot_id, orchestrator_run_id)`` under a unique constraint, and
:meth:`RunStore.get_or_create_run` is the only way a step attaches to a run. However many first
steps race, they converge on one row: the loser of an insert race reads the winner's row.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from orcakit import ExecutionStatus, StoreError
from orcakit.orchestrator import MAX_RUN_ID_LENGTH

from .faults import sqlite_folder, translate_sqlite_faults
from .run_ids import AMBIGUOUS_SHOWN, ambiguous_prefix
from .stores import RunStoreKind, run_store_kind, sqlite_database

S = ExecutionStatus


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Base(DeclarativeBase):
    pass


class PipelineRunRow(_Base):
    __tablename__ = "pipeline_runs"
    __table_args__ = (UniqueConstraint("snapshot_id", "orchestrator_run_id", name="uq_run_per_snapshot"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    snapshot_id: Mapped[str] = mapped_column(String(64), index=True)
    # NULL while the run is a placeholder the client created before submission.
    orchestrator_run_id: Mapped[str | None] = mapped_column(String(MAX_RUN_ID_LENGTH), nullable=True)
    pipeline_name: Mapped[str] = mapped_column(String(255))
    orchestrator: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    metadata_json: Mapped[str] = mapped_column(Text, default="{}")


class StepRunRow(_Base):
    __tablename__ = "step_runs"
    __table_args__ = (UniqueConstraint("run_id", "step_name", name="uq_step_per_run"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("pipeline_runs.id"), index=True)
    step_name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    outputs_json: Mapped[str] = mapped_column(Text, default="{}")


class StepAttemptRow(_Base):
    __tablename__ = "step_attempts"
    __table_args__ = (UniqueConstraint("step_run_id", "attempt", name="uq_attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    step_run_id: Mapped[int] = mapped_column(ForeignKey("step_runs.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    host: Mapped[str] = mapped_column(String(255), default="")


class RunLeaseRow(_Base):
    """Who drives a run from a client process, and when it last said it was alive (see
    :mod:`.leases`). Its own table rather than columns on ``pipeline_runs``: a run store made
    by an earlier orcakit gains it through ``create_all`` alone (no ALTER TABLE, no race
    between processes migrating at once), and runs driven by something other than a client
    (an orchestrator pod) simply have no row, so no client ever mistakes them for orphans."""

    __tablename__ = "run_leases"

    run_id: Mapped[str] = mapped_column(ForeignKey("pipeline_runs.id"), primary_key=True)
    # The backend's run ID as the driver chose it: known before any step attached, so that
    # whoever reaps the run can kill what the backend started even then.
    orchestrator_run_id: Mapped[str] = mapped_column(String(MAX_RUN_ID_LENGTH))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    # What makes (host, pid) one process: boot ID, PID namespace and start time (see leases).
    process: Mapped[str] = mapped_column(String(255))
    # Written with the database's clock (func.now()) and compared with it, so clock skew
    # between client machines does not matter.
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Counts heartbeats: the version a reaper's take-over is conditional on (comparing
    # timestamps would depend on how each dialect stores them).
    beat: Mapped[int] = mapped_column(Integer, default=0)


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


def _run_record(row: PipelineRunRow) -> RunRecord:
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


def _step_record(row: StepRunRow) -> StepRecord:
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


def _engine(url: str, immediate: bool = True) -> Engine:
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


class RunStore:
    """Records of runs, steps and attempts. Safe for concurrent use from many processes."""

    def __init__(self, url: str, create_tables: bool = True) -> None:
        """``create_tables=False`` skips the schema check: for step processes, whose client has
        already opened (and so created) the store."""
        self.url = url
        self._engine = _engine(url)
        self._read_engine: Engine | None = None
        if not create_tables:
            return
        try:
            _Base.metadata.create_all(self._engine)
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

    def _session(self) -> Session:
        return Session(self._engine, expire_on_commit=False)

    def warm_up(self) -> None:
        """Pay once, here, what a process otherwise pays on its first use of the store (the SQL
        dialect, ORM mapper configuration, compiling each statement a step runs: tens of
        milliseconds). A fork server calls this so that every forked step inherits a warm
        engine. Every statement runs inside a transaction that is rolled back — nothing is
        written — and the connections are closed afterwards, so none crosses a fork."""
        from sqlalchemy.orm import configure_mappers

        configure_mappers()
        with self._engine.connect() as connection:
            transaction = connection.begin()
            self._session = lambda: Session(bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint")
            try:
                run = self.create_placeholder_run("warm-up", "warm-up", "warm-up")
                run = self.get_or_create_run("warm-up", "warm-up", "warm-up", "warm-up", placeholder_id=run.id)
                attempt = self.start_attempt(run.id, "warm-up")
                self.finish_attempt(run.id, "warm-up", attempt, succeeded=True, total_attempts=1, outputs={"output": "-"})
                self.finalize_run(run.id, ["warm-up"])
            finally:
                del self._session  # the class's own method again
                transaction.rollback()
        self.step("warm-up", "warm-up")  # the read path, on the reader engine
        self.close()

    def _reader(self) -> Session:
        """A session for reads only (on SQLite: deferred transactions, so polling a run's
        progress never queues behind the step processes that write it)."""
        if self._read_engine is None:
            self._read_engine = (
                self._engine if run_store_kind(self.url) is RunStoreKind.NETWORK else _engine(self.url, immediate=False)
            )
        return Session(self._read_engine, expire_on_commit=False)

    # -- runs --------------------------------------------------------------------------------

    def create_placeholder_run(self, snapshot_id: str, pipeline_name: str, orchestrator: str) -> RunRecord:
        """The run the client creates before submission; the first step takes it over."""
        row = PipelineRunRow(
            id=uuid.uuid4().hex,
            snapshot_id=snapshot_id,
            orchestrator_run_id=None,
            pipeline_name=pipeline_name,
            orchestrator=orchestrator,
            status=S.INITIALIZING.value,
            created_at=_now(),
        )
        with self._session() as session, session.begin():
            session.add(row)
        return _run_record(row)

    def get_or_create_run(
        self, snapshot_id: str, orchestrator_run_id: str, pipeline_name: str, orchestrator: str = "",
        placeholder_id: str | None = None,
    ) -> RunRecord:
        """The run for ``(snapshot_id, orchestrator_run_id)``: found, or the submission's
        placeholder (``placeholder_id``) taken over, or created. Race-safe: concurrent callers
        all get the same run."""
        for _ in range(50):
            with self._session() as session:
                try:
                    with session.begin():
                        found = session.scalar(
                            select(PipelineRunRow).where(
                                PipelineRunRow.snapshot_id == snapshot_id,
                                PipelineRunRow.orchestrator_run_id == orchestrator_run_id,
                            )
                        )
                        if found is not None:
                            return _run_record(found)
                        if placeholder_id is not None:
                            # Conditional update: only one racer can turn NULL into its ID.
                            taken = session.execute(
                                update(PipelineRunRow)
                                .where(
                                    PipelineRunRow.id == placeholder_id,
                                    PipelineRunRow.snapshot_id == snapshot_id,
                                    PipelineRunRow.orchestrator_run_id.is_(None),
                                )
                                .values(orchestrator_run_id=orchestrator_run_id, status=S.RUNNING.value, started_at=_now())
                            ).rowcount
                            if taken == 1:
                                return _run_record(session.get(PipelineRunRow, placeholder_id, populate_existing=True))
                        row = PipelineRunRow(
                            id=uuid.uuid4().hex,
                            snapshot_id=snapshot_id,
                            orchestrator_run_id=orchestrator_run_id,
                            pipeline_name=pipeline_name,
                            orchestrator=orchestrator,
                            status=S.RUNNING.value,
                            created_at=_now(),
                            started_at=_now(),
                        )
                        session.add(row)
                    return _run_record(row)
                except IntegrityError:
                    # Lost the insert race: go round again and read the winner's row.
                    continue
        raise StoreError(
            f"could not attach to run ({snapshot_id}, {orchestrator_run_id!r}) after 50 tries",
            fix="check the run store is not being rewritten concurrently by something other than orcakit",
        )

    def get_run(self, run_id: str) -> RunRecord:
        with self._reader() as session:
            row = session.get(PipelineRunRow, run_id)
            if row is None and run_id:
                # autoescape: run IDs are hex, but a typed '_' or '%' must not act as a wildcard.
                query = select(PipelineRunRow).where(PipelineRunRow.id.startswith(run_id, autoescape=True))
                matches = session.scalars(query.order_by(PipelineRunRow.created_at.desc()).limit(AMBIGUOUS_SHOWN + 1)).all()
                if len(matches) > 1:
                    raise ambiguous_prefix(run_id, [_run_record(match) for match in matches])
                row = matches[0] if matches else None
            if row is None:
                raise StoreError(f"no run {run_id!r} in the run store", fix="list runs with `orcakit runs list`")
            return _run_record(row)

    def find_run(self, snapshot_id: str, orchestrator_run_id: str) -> RunRecord | None:
        with self._reader() as session:
            row = session.scalar(
                select(PipelineRunRow).where(
                    PipelineRunRow.snapshot_id == snapshot_id, PipelineRunRow.orchestrator_run_id == orchestrator_run_id
                )
            )
            return None if row is None else _run_record(row)

    def list_runs(self, limit: int = 50, snapshot_id: str | None = None) -> list[RunRecord]:
        with self._reader() as session:
            query = select(PipelineRunRow).order_by(PipelineRunRow.created_at.desc()).limit(limit)
            if snapshot_id is not None:
                query = query.where(PipelineRunRow.snapshot_id == snapshot_id)
            return [_run_record(row) for row in session.scalars(query)]

    def set_run_status(self, run_id: str, status: ExecutionStatus, reason: str | None = None, metadata: dict | None = None) -> RunRecord:
        """Move a run to ``status`` if the transition is allowed (terminal statuses stick)."""
        with self._session() as session, session.begin():
            row = session.get(PipelineRunRow, run_id, with_for_update=True)
            if row is None:
                raise StoreError(f"no run {run_id!r} in the run store")
            if ExecutionStatus(row.status).can_become(status):
                row.status = status.value
                if status is S.RUNNING and row.started_at is None:
                    row.started_at = _now()
                if status.is_finished and row.ended_at is None:
                    row.ended_at = _now()
                if reason:
                    row.reason = reason
            if metadata:
                row.metadata_json = json.dumps({**json.loads(row.metadata_json or "{}"), **metadata}, default=str)
            return _run_record(row)

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
        with self._session() as session, session.begin():
            row = session.get(PipelineRunRow, run_id, with_for_update=True)
            steps = {s.step_name: ExecutionStatus(s.status) for s in session.scalars(select(StepRunRow).where(StepRunRow.run_id == run_id))}
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
            if current != status and current.can_become(status):
                row.status = status.value
                if status.is_finished:
                    row.ended_at = _now()
                if status is S.FAILED:
                    failed = [name for name, s in zip(names, statuses) if s is S.FAILED]
                    row.reason = f"step(s) failed: {', '.join(failed)}"
            return _run_record(row)

    # -- driver leases (see .leases) ---------------------------------------------------------

    def claim_lease(self, run_id: str, orchestrator_run_id: str, host: str, pid: int, process: str) -> None:
        """Record that this process (``host``, ``pid``, ``process``) drives ``run_id``."""
        with self._session() as session, session.begin():
            session.execute(delete(RunLeaseRow).where(RunLeaseRow.run_id == run_id))
            session.add(RunLeaseRow(
                run_id=run_id, orchestrator_run_id=orchestrator_run_id, host=host, pid=pid, process=process,
                heartbeat_at=func.now(), beat=0,
            ))

    def renew_lease(self, run_id: str, pid: int, process: str) -> bool:
        """Heartbeat: False when the lease is no longer this process's (a reaper took it over)."""
        with self._session() as session, session.begin():
            return session.execute(
                update(RunLeaseRow)
                .where(RunLeaseRow.run_id == run_id, RunLeaseRow.pid == pid, RunLeaseRow.process == process)
                .values(heartbeat_at=func.now(), beat=RunLeaseRow.beat + 1)
            ).rowcount == 1

    def take_over_lease(self, lease: LeaseRecord, host: str, pid: int, process: str) -> bool:
        """Move ``lease`` to a reaper, only if it is unchanged since it was read: of two
        processes that found the same orphan, exactly one reaps it."""
        with self._session() as session, session.begin():
            return session.execute(
                update(RunLeaseRow)
                .where(
                    RunLeaseRow.run_id == lease.run_id, RunLeaseRow.pid == lease.pid,
                    RunLeaseRow.process == lease.process, RunLeaseRow.beat == lease.beat,
                )
                .values(host=host, pid=pid, process=process, heartbeat_at=func.now(), beat=lease.beat + 1)
            ).rowcount == 1

    def release_lease(self, run_id: str, pid: int, process: str) -> None:
        """The driver is done with the run (it is terminal): drop its lease."""
        with self._session() as session, session.begin():
            session.execute(
                delete(RunLeaseRow).where(RunLeaseRow.run_id == run_id, RunLeaseRow.pid == pid, RunLeaseRow.process == process)
            )

    def leased_unfinished_runs(self, run_ids: list[str] | None = None) -> list[tuple[RunRecord, LeaseRecord]]:
        """Unfinished runs that a client process drives (or drove), with their leases: the
        only candidates for orphans. One indexed query, so every client can afford it."""
        unfinished = [status.value for status in ExecutionStatus if not status.is_finished]
        with self._reader() as session:
            query = (
                select(PipelineRunRow, RunLeaseRow)
                .join(RunLeaseRow, RunLeaseRow.run_id == PipelineRunRow.id)
                .where(PipelineRunRow.status.in_(unfinished))
            )
            if run_ids is not None:
                query = query.where(PipelineRunRow.id.in_(run_ids))
            rows = session.execute(query).all()
            if not rows:
                return []
            now = _aware(session.scalar(select(func.now())))
        return [
            (_run_record(run), LeaseRecord(
                run_id=lease.run_id, orchestrator_run_id=lease.orchestrator_run_id, host=lease.host, pid=lease.pid,
                process=lease.process, heartbeat_at=_aware(lease.heartbeat_at), beat=lease.beat,
                age=(now - _aware(lease.heartbeat_at)).total_seconds(),
            ))
            for run, lease in rows
        ]

    # -- steps -------------------------------------------------------------------------------

    def start_attempt(self, run_id: str, step_name: str) -> int:
        """Record a new attempt of a step (RUNNING) and return its number, counting from 1."""
        with self._session() as session, session.begin():
            step = session.scalar(
                select(StepRunRow).where(StepRunRow.run_id == run_id, StepRunRow.step_name == step_name).with_for_update()
            )
            if step is None:
                step = StepRunRow(run_id=run_id, step_name=step_name, status=S.RUNNING.value, attempts=0, started_at=_now())
                session.add(step)
                session.flush()
            elif ExecutionStatus(step.status).is_finished:
                raise StoreError(
                    f"step {step_name!r} of run {run_id} already ended {step.status.upper()}; it cannot start again",
                    why="a step runs at most once per attempt, and a finished step is never re-run within its run",
                    fix="start a new run",
                )
            step.attempts += 1
            step.status = S.RUNNING.value
            step.reason = None
            session.add(StepAttemptRow(step_run_id=step.id, attempt=step.attempts, status=S.RUNNING.value, started_at=_now(), host=socket.gethostname()))
            return step.attempts

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
    ) -> ExecutionStatus:
        """End an attempt. A failed attempt leaves the step RETRYING while attempts remain, else
        FAILED (SPEC RETRY-1). ``final_status`` (e.g. STOPPED) overrides that rule."""
        with self._session() as session, session.begin():
            step = session.scalar(
                select(StepRunRow).where(StepRunRow.run_id == run_id, StepRunRow.step_name == step_name).with_for_update()
            )
            if step is None:  # the step died before its entrypoint could record it
                step = StepRunRow(run_id=run_id, step_name=step_name, status=S.RUNNING.value, attempts=attempt, started_at=_now())
                session.add(step)
                session.flush()
                session.add(StepAttemptRow(step_run_id=step.id, attempt=attempt, status=S.RUNNING.value, started_at=_now()))
                session.flush()
            record = session.scalar(
                select(StepAttemptRow).where(StepAttemptRow.step_run_id == step.id, StepAttemptRow.attempt == attempt)
            )
            if record is None:  # the attempt died before its entrypoint recorded it
                record = StepAttemptRow(step_run_id=step.id, attempt=attempt, status=S.RUNNING.value, started_at=_now())
                session.add(record)
                step.attempts = max(step.attempts, attempt)
            if ExecutionStatus(record.status).is_finished:
                return ExecutionStatus(step.status)  # already recorded (e.g. by the entrypoint)
            if final_status is not None:
                status = final_status
            elif succeeded:
                status = S.COMPLETED
            else:
                status = S.RETRYING if attempt < total_attempts else S.FAILED
            record.status = (S.COMPLETED if succeeded else (final_status or S.FAILED)).value
            record.ended_at = _now()
            record.reason = reason
            step.status = status.value
            step.reason = reason
            if status.is_finished:
                step.ended_at = _now()
            if outputs:
                step.outputs_json = json.dumps(outputs)
            return status

    def mark_steps(self, run_id: str, step_names: list[str], status: ExecutionStatus, reason: str) -> None:
        """Give steps that never ran (or were stopped) a terminal status such as SKIPPED/STOPPED."""
        with self._session() as session, session.begin():
            existing = {
                row.step_name: row
                for row in session.scalars(select(StepRunRow).where(StepRunRow.run_id == run_id, StepRunRow.step_name.in_(step_names)))
            }
            for name in step_names:
                row = existing.get(name)
                if row is None:
                    session.add(StepRunRow(run_id=run_id, step_name=name, status=status.value, attempts=0, ended_at=_now(), reason=reason))
                elif not ExecutionStatus(row.status).is_finished:
                    row.status, row.reason, row.ended_at = status.value, reason, _now()
                    for attempt in session.scalars(select(StepAttemptRow).where(StepAttemptRow.step_run_id == row.id)):
                        if not ExecutionStatus(attempt.status).is_finished:
                            attempt.status, attempt.ended_at, attempt.reason = status.value, _now(), reason

    def steps(self, run_id: str) -> dict[str, StepRecord]:
        with self._reader() as session:
            rows = session.scalars(select(StepRunRow).where(StepRunRow.run_id == run_id).order_by(StepRunRow.id))
            return {row.step_name: _step_record(row) for row in rows}

    def step(self, run_id: str, step_name: str) -> StepRecord | None:
        with self._reader() as session:
            row = session.scalar(select(StepRunRow).where(StepRunRow.run_id == run_id, StepRunRow.step_name == step_name))
            return None if row is None else _step_record(row)

    def attempts(self, run_id: str) -> Iterator[AttemptRecord]:
        with self._reader() as session:
            query = (
                select(StepRunRow.step_name, StepAttemptRow)
                .join(StepAttemptRow, StepAttemptRow.step_run_id == StepRunRow.id)
                .where(StepRunRow.run_id == run_id)
                .order_by(StepRunRow.step_name, StepAttemptRow.attempt)
            )
            rows = session.execute(query).all()
        for name, attempt in rows:
            yield AttemptRecord(
                step_name=name,
                attempt=attempt.attempt,
                status=ExecutionStatus(attempt.status),
                started_at=_aware(attempt.started_at),
                ended_at=_aware(attempt.ended_at),
                reason=attempt.reason,
                host=attempt.host,
            )
