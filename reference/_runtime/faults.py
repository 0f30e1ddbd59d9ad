"""When the machine gets in the way: files and folders orcakit keeps its state in that are
missing, read-only, unreadable or not what they should be, turned into errors that teach.

Two stores live on this machine's disk by default, both under ``$ORCAKIT_HOME``: the config
(``config.json``, :mod:`.config_store`) and the SQLite run store (``runs.db``,
:mod:`.run_store`). Their faults surface deep inside ``open()`` or the SQLite driver as an
``OSError`` or a ``sqlite3`` error whose message names neither the file nor what to do. They are
translated here, in the store layer, so that a library user gets the same typed
:class:`~orcakit.OrcakitError` (what / why / fix) as a user of the ``orcakit`` command, which
prints it without a traceback.

Only the faults named here are translated; everything else (an insert race the run store
resolves itself, a table that already exists) passes through untouched.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from orcakit import OrcakitError, StoreError

if TYPE_CHECKING:  # SQLAlchemy is imported only by the run store: the config store needs none of it
    from sqlalchemy.engine import Engine

#: Where a user can move the state folder to (said in every fix about it).
HOME_HINT = "or set ORCAKIT_HOME to a folder you can write"

# SQLite's messages (sqlite3 error text) for each fault, lower-case.
_CORRUPT = ("file is not a database", "database disk image is malformed", "file is encrypted or is not a database")
_READ_ONLY = ("attempt to write a readonly database", "readonly database")
_CANNOT_OPEN = ("unable to open database file",)
_LOCKED = ("database is locked",)
_IO = ("disk i/o error",)
_FULL = ("database or disk is full",)


def file_error(
    exc: OSError, path: Path, doing: str, error: Callable[..., OrcakitError], why: str
) -> OrcakitError:
    """``exc``, raised while ``doing`` (e.g. "write") ``path``, as an ``error(what, why, fix)``
    that says which file or folder is at fault and how to make it usable."""
    culprit = Path(exc.filename) if isinstance(exc.filename, str) else path
    if exc.errno in (errno.EACCES, errno.EPERM) and not culprit.exists():
        culprit = culprit.parent  # creating a file: it is the folder that refuses
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM):
        fix = f"give this user access to {culprit} (e.g. chmod u+rw, or chown it), {HOME_HINT}"
    elif exc.errno == errno.EROFS:
        fix = f"{culprit} is on a read-only file system: {HOME_HINT} on a writable one"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST) or isinstance(exc, (NotADirectoryError, FileExistsError)):
        fix = f"{_first_non_folder(culprit)} must be a folder, not a file: move the file away, {HOME_HINT}"
    elif exc.errno == errno.EISDIR:
        fix = f"{culprit} is a folder where a file should be: move it away"
    elif exc.errno == errno.ENOSPC:
        fix = f"free some space on the disk that holds {culprit}"
    else:
        fix = f"check {culprit} and the folders above it, {HOME_HINT}"
    return error(f"cannot {doing} {path}: {reason}", why=why, fix=fix)


def _first_non_folder(path: Path) -> Path:
    """The first existing non-folder on the way to ``path`` (what makes ``mkdir`` fail)."""
    for parent in reversed([path, *path.parents]):
        if parent.exists() and not parent.is_dir():
            return parent
    return path


# -- the SQLite run store --------------------------------------------------------------------------


def sqlite_folder(database: str) -> None:
    """Create the folder of SQLite file ``database`` if needed, or say why it cannot be; and
    the file itself readable by its owner only, like the artifacts (SPEC SEC-1: failure
    reasons and step outputs are in it). SQLite gives its -wal and -shm files the database
    file's mode, so they follow."""
    path = Path(database).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise file_error(exc, path.parent, "create the run store's folder", StoreError, _WHY_RUN_STORE) from None
    # Where the folder's default ACL shares it with named users (the docker flavor's step
    # containers), the group bits are the ACL mask: rw lets them in, "other" stays excluded.
    mode = 0o660 if _has_acl(path.parent, "system.posix_acl_default") else 0o600
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
    except FileExistsError:
        _owner_only(path)  # made by an earlier orcakit with the umask's mode (0644)
    except OSError:
        pass  # a read-only folder: opening the database says why, with the fix
    for side in (f"{path}-wal", f"{path}-shm"):
        _owner_only(Path(side))


def _owner_only(path: Path) -> None:
    """Take group and other access away from ``path`` when this user owns it (best effort: a
    shared store someone set up on purpose, or a read-only one, stays as it is)."""
    try:
        info = path.stat()
        # With an ACL the group bits are its mask (what named users get): only "other" goes.
        keep = 0o770 if _has_acl(path, "system.posix_acl_access") else 0o700
        if info.st_uid == os.geteuid() and info.st_mode & 0o777 & ~keep and path.is_file():
            path.chmod(info.st_mode & keep)
    except OSError:
        pass


def _has_acl(path: Path, attribute: str) -> bool:
    try:
        return bool(os.getxattr(path, attribute))
    except OSError:  # no such attribute, or no ACLs on this file system
        return False


_WHY_RUN_STORE = "every run, step and attempt is recorded in the run store, so nothing can run or be shown without it"


def translate_sqlite_faults(engine: "Engine", database: str) -> None:
    """Make ``engine`` (a SQLite file's) raise :class:`~orcakit.StoreError` naming the file and
    the fix when the file is corrupt, read-only, cannot be opened or stays locked, instead of
    the driver's bare message. SQLAlchemy's ``handle_error`` hook sees every driver error,
    those of opening a connection included, so no call site needs a try block."""
    from sqlalchemy import event

    path = Path(database).expanduser()

    @event.listens_for(engine, "handle_error")
    def _translate(context) -> None:  # noqa: ANN001 - sqlalchemy's ExceptionContext
        message = str(context.original_exception).lower()
        fault = sqlite_fault(path, message)
        if fault is not None:
            raise fault from context.original_exception


def sqlite_fault(path: Path, message: str) -> StoreError | None:
    """The StoreError for SQLite error ``message`` on database ``path``, or None when the error
    is not a fault of the file (a constraint, a syntax error: the caller's business)."""
    where = f"run store {path}"
    if any(text in message for text in _CORRUPT):
        return StoreError(
            f"the {where} is not a usable SQLite database ({message})",
            why="the file was damaged (a crash while the disk was full, a copy of a file in use) or is not a database at all",
            fix=(
                f"move it aside (mv {path} {path}.broken) and orcakit creates a new, empty one; the runs recorded in it "
                f"are then gone unless `sqlite3 {path}.broken .recover` can save them"
            ),
        )
    if any(text in message for text in _READ_ONLY):
        return StoreError(
            f"the {where} is read-only: {_read_only_culprit(path)}",
            why="recording a run writes to the database file, and SQLite also creates its journal files (-wal, -shm) beside it",
            fix=f"make the file and its folder writable for this user (chmod u+w {path} {path.parent}), {HOME_HINT}, "
                "or point the stack at another run store (orcakit stack register ... --run-store URL)",
        )
    if any(text in message for text in _CANNOT_OPEN):
        return StoreError(
            f"cannot open the {where}: {_open_culprit(path)}",
            why=_WHY_RUN_STORE,
            fix=f"make {path} readable and writable and its folder writable for this user, {HOME_HINT}",
        )
    if any(text in message for text in _LOCKED):
        return StoreError(
            f"the {where} stayed locked by another process for longer than the busy timeout",
            why="SQLite lets one process write at a time; another process held the write lock the whole time",
            fix="find the process that keeps the database busy (fuser " + str(path) + ") and end it, or retry",
        )
    if any(text in message for text in _FULL) or (any(text in message for text in _IO) and _disk_full(path)):
        # SQLite says "disk I/O error" when the -shm/-wal write hits ENOSPC: ask the disk.
        return StoreError(
            f"no space left on the disk that holds the {where}",
            why="recording a run writes to the database file and its journal files (-wal, -shm) beside it",
            fix=f"free some space on the disk that holds {path.parent} (df -h {path.parent}), {HOME_HINT} on another disk",
        )
    if any(text in message for text in _IO):
        return StoreError(
            f"disk I/O error on the {where} ({_read_only_culprit(path)})",
            why="SQLite could not read or write the database or its journal files (-wal, -shm) beside it",
            fix=f"check the disk and that {path.parent} is writable, {HOME_HINT}",
        )
    return None


def _disk_full(path: Path) -> bool:
    """Whether the file system that holds ``path`` has (nearly) no space left for this user."""
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 64 * 1024


def _read_only_culprit(path: Path) -> str:
    """Which of the file, its folder or the file system refuses writes (as far as we can tell)."""
    if path.exists() and not os.access(path, os.W_OK):
        return f"this user may not write the file {path}"
    if not os.access(path.parent, os.W_OK):
        return f"this user may not write its folder {path.parent} (SQLite creates {path.name}-wal and {path.name}-shm there)"
    for side in (f"{path}-wal", f"{path}-shm"):
        if os.path.exists(side) and not os.access(side, os.W_OK):
            return f"this user may not write {side}"
    try:
        if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
            return f"{path.parent} is on a read-only file system"
    except OSError:
        pass
    return "the file or its folder refuses writes"


def _open_culprit(path: Path) -> str:
    if not path.parent.is_dir():
        return f"its folder {path.parent} does not exist or is not a folder"
    if path.is_dir():
        return f"{path} is a folder, not a database file"
    if path.exists() and not os.access(path, os.R_OK):
        return f"this user may not read {path}"
    if not path.exists() and not os.access(path.parent, os.W_OK):
        return f"it does not exist and this user may not create it in {path.parent}"
    return "the file or its folder is not accessible to this user"
