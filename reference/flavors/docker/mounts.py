"""Which host folders a step container mounts, and how the container's user may write them.

The default stores are on the host's disk: the local artifact folder and the SQLite run store's
folder. Each is bind-mounted at the *same absolute path* inside the container, so every path and
URI in the snapshot means the same thing inside and out.

Steps run as a non-root user (``1000:1000`` by default) while the folders usually belong to
whoever ran the client (often root). Rather than changing owners or making folders
world-writable, the container's user (and the client's own user, for files the container
creates) is granted access with POSIX ACLs, written straight to the ``system.posix_acl_*``
extended attributes (no ``setfacl`` binary needed):

- the artifact folder and every folder below it: ``rwx`` for the user, inherited by new folders
  through a *default* ACL; files there are owner-only (SPEC SEC-1) and written once and renamed
  into place, never changed in place: those already there get ``r`` for the user, new ones
  inherit it (the artifact store sets their ACL mask to ``r``);
- the run store's folder (not recursively) with a default ACL, and the SQLite file with its
  ``-wal``/``-shm``/``-journal`` companions: ``rw``. SQLite creates the companions with the
  database file's mode, whose group-class bits the ACL mask keeps at ``rw``, so companions created
  later by either side stay writable for both.

Where a file system has no ACLs, a root client falls back to handing the folders to the
container's user (``chown``); anyone else gets a SubmissionError that says what to do.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

from orcakit import SubmissionError

_ACCESS = "system.posix_acl_access"
_DEFAULT = "system.posix_acl_default"
_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_UNDEFINED = 0xFFFFFFFF
_ENTRY = struct.Struct("<HHI")
_RWX, _RW, _R = 7, 6, 4
#: Run-store companions SQLite keeps next to the database file.
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


@dataclass
class MountPlan:
    """Host folders to bind-mount (at the same path) and what to grant on them."""

    folders: list[Path] = field(default_factory=list)
    #: Folders the container writes anywhere below (granted recursively).
    trees: list[Path] = field(default_factory=list)
    #: SQLite database files (the folder itself is granted, not what else lives in it).
    databases: list[Path] = field(default_factory=list)

    def volumes(self) -> dict[str, dict[str, str]]:
        """The Docker SDK's ``volumes=`` for this plan: same path inside, read-write."""
        return {str(path): {"bind": str(path), "mode": "rw"} for path in self.folders}


def plan_mounts(artifact_root: Path | None, sqlite_file: Path | None) -> MountPlan:
    """Mount the artifact folder and the SQLite folder; a folder inside another is covered by
    the outer mount."""
    plan = MountPlan()
    candidates: list[Path] = []
    if artifact_root is not None:
        plan.trees.append(artifact_root)
        candidates.append(artifact_root)
    if sqlite_file is not None:
        folder = sqlite_file.parent
        mode = folder.stat().st_mode
        if mode & stat.S_ISVTX and mode & stat.S_IWOTH:
            raise SubmissionError(
                f"the run store {sqlite_file} lies directly in {folder}, a shared sticky folder (like /tmp)",
                why="step containers mount the run store's folder to reach the SQLite file and its -wal/-shm files; "
                "mounting and granting a shared folder such as /tmp would expose everything in it",
                fix=f"put the run store in a folder of its own, e.g. sqlite:///{folder}/orcakit/runs.db",
            )
        plan.databases.append(sqlite_file)
        candidates.append(folder)
    for path in candidates:
        if any(other != path and other in path.parents for other in candidates):
            continue
        if path not in plan.folders:
            plan.folders.append(path)
    return plan


def grant_access(plan: MountPlan, uid: int, gid: int) -> str:
    """Let ``uid`` write what ``plan`` mounts; returns how ('acl', 'chown' or 'none')."""
    client_uid = os.geteuid()
    if uid == 0 or uid == client_uid:
        return "none"  # the container runs as the folders' owner (or root): nothing to grant
    uids = [uid] + ([client_uid] if client_uid != 0 else [])
    try:
        for tree in plan.trees:
            _grant_tree(tree, uids)
        for database in plan.databases:
            _grant_folder(database.parent, uids)
            for suffix in SQLITE_SUFFIXES:
                companion = Path(f"{database}{suffix}")
                if companion.exists():
                    _grant(companion, uids, _RW, default=False)
        return "acl"
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM, errno.EACCES):
            raise
        reason = exc
    if client_uid == 0:
        for tree in plan.trees:
            for folder, _, files in os.walk(tree):
                os.chown(folder, uid, gid)
                for name in files:  # owner-only files (the run's snapshot)
                    os.chown(os.path.join(folder, name), uid, gid)
        for database in plan.databases:
            os.chown(database.parent, uid, gid)
            for suffix in SQLITE_SUFFIXES:
                companion = Path(f"{database}{suffix}")
                if companion.exists():
                    os.chown(companion, uid, gid)
        return "chown"
    folders = ", ".join(str(p) for p in plan.folders)
    raise SubmissionError(
        f"step containers run as uid {uid} but cannot be given write access to {folders}: {reason}",
        why="the file system has no POSIX ACLs and this client is not root, so the folders can't be shared safely",
        fix=f"run the steps as your own user (orchestrator config user='{client_uid}:{os.getegid()}'), "
        "or use stores on a file system with ACLs, or a PostgreSQL run store and an S3 artifact store",
    )


def _grant_tree(root: Path, uids: list[int]) -> None:
    # New folders inherit the default ACL, so a root that has it was granted before: done.
    if _has_default(root, uids):
        return
    for folder, _, files in os.walk(root):
        _grant(Path(folder), uids, _RWX, default=True)
        # Files are owner-only (the artifact store writes 0600); those written before this
        # grant (the run's snapshot) become readable by the granted users. Later ones inherit
        # the folder's default ACL.
        for name in files:
            _grant(Path(folder, name), uids, _R, default=False)


def _grant_folder(folder: Path, uids: list[int]) -> None:
    if not _has_default(folder, uids):
        _grant(folder, uids, _RWX, default=True)


def _has_default(folder: Path, uids: list[int]) -> bool:
    try:
        entries = _decode(os.getxattr(folder, _DEFAULT))
    except OSError:
        return False
    named = {entry_id: perm for tag, perm, entry_id in entries if tag == _USER}
    return all(named.get(uid, 0) & _RWX == _RWX for uid in uids)


def _grant(path: Path, uids: list[int], perm: int, *, default: bool) -> None:
    access = _with_users(_current(path, _ACCESS), uids, perm)
    os.setxattr(path, _ACCESS, _encode(access))
    if default:
        os.setxattr(path, _DEFAULT, _encode(_with_users(_current(path, _DEFAULT, access), uids, perm)))


def _current(path: Path, name: str, fallback: list[tuple[int, int, int]] | None = None) -> list[tuple[int, int, int]]:
    try:
        return _decode(os.getxattr(path, name))
    except OSError as exc:
        if exc.errno != errno.ENODATA:
            raise
    if fallback is not None:
        return list(fallback)
    mode = path.stat().st_mode
    return [(_USER_OBJ, (mode >> 6) & 7, _UNDEFINED), (_GROUP_OBJ, (mode >> 3) & 7, _UNDEFINED), (_OTHER, mode & 7, _UNDEFINED)]


def _with_users(entries: list[tuple[int, int, int]], uids: list[int], perm: int) -> list[tuple[int, int, int]]:
    named = {entry_id: p for tag, p, entry_id in entries if tag == _USER}
    for uid in uids:
        named[uid] = named.get(uid, 0) | perm
    others = [entry for entry in entries if entry[0] not in (_USER, _MASK)]
    result = others + [(_USER, p, uid) for uid, p in named.items()]
    # The mask bounds every group-class entry: recompute it as their union (what setfacl does).
    mask = 0
    for tag, p, _ in result:
        if tag in (_USER, _GROUP_OBJ, _GROUP):
            mask |= p
    result.append((_MASK, mask, _UNDEFINED))
    return sorted(result, key=lambda entry: (entry[0], entry[2]))


def _encode(entries: list[tuple[int, int, int]]) -> bytes:
    return struct.pack("<I", _VERSION) + b"".join(_ENTRY.pack(*entry) for entry in entries)


def _decode(blob: bytes) -> list[tuple[int, int, int]]:
    (version,) = struct.unpack_from("<I", blob)
    if version != _VERSION:
        raise OSError(errno.EOPNOTSUPP, f"unknown POSIX ACL version {version}")
    return [_ENTRY.unpack_from(blob, offset) for offset in range(4, len(blob), _ENTRY.size)]
