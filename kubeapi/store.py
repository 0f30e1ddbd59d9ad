"""Objects, the one global revision counter, the bounded event history and watches.

Every write takes the next revision and stamps it on the object as ``metadata.resourceVersion``
(as etcd's revision is on a real server); list answers carry the current revision. Each write is
also appended to a bounded history, which is what watches resume from: a watch from revision N
replays the retained events after N, and a watch from a revision older than the history answers
410 Gone (``Expired``), as a compacted etcd makes a real server do. ``window`` bounds the history
so that tests can force that answer.

The store is used from one asyncio event loop only (handlers, controllers and the kubelet all
run on it), so it needs no locks; stored objects are never mutated in place, every write stores
a new dict, so an event's object stays what it was when the event happened.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .status import expired

Key = tuple[str, str, str]  # (resource storage key, namespace or "", name)
Predicate = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Event:
    revision: int
    type: str  # ADDED, MODIFIED, DELETED
    storage_key: str
    namespace: str
    object: dict[str, Any]
    previous: dict[str, Any] | None


@dataclass(eq=False)
class Watch:
    """One client's watch: the events it should see, already filtered, in a queue."""

    storage_key: str
    namespace: str | None
    matches: Predicate
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)

    def offer(self, event: Event) -> None:
        if event.storage_key != self.storage_key or (self.namespace and event.namespace != self.namespace):
            return
        # A selector watch sees an object leave its selection as DELETED and enter it as ADDED,
        # as a real server's watch cache filters them.
        now = event.type != "DELETED" and self.matches(event.object)
        before = event.previous is not None and self.matches(event.previous)
        if event.type == "DELETED":
            kind = "DELETED" if self.matches(event.object) else None
        elif now and before:
            kind = "MODIFIED"
        elif now:
            kind = "ADDED"
        elif before:
            kind = "DELETED"
        else:
            kind = None
        if kind:
            self.queue.put_nowait((kind, event.object))


class Store:
    def __init__(self, window: int = 10_000) -> None:
        self.revision = 1
        self.window = window
        self._objects: dict[Key, dict[str, Any]] = {}
        self._history: deque[Event] = deque()
        # every revision up to this one has left the history
        self._compacted = 0
        self._watches: set[Watch] = set()
        self._listeners: list[Callable[[Event], None]] = []

    # reads -----------------------------------------------------------------------------
    def get(self, storage_key: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self._objects.get((storage_key, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, storage_key: str, namespace: str | None = None, matches: Predicate | None = None) -> list[dict[str, Any]]:
        return [copy.deepcopy(obj) for obj in self._iter(storage_key, namespace) if matches is None or matches(obj)]

    def _iter(self, storage_key: str, namespace: str | None) -> Iterator[dict[str, Any]]:
        for (key, ns, _name), obj in sorted(self._objects.items()):
            if key == storage_key and (not namespace or ns == namespace):
                yield obj

    # writes ----------------------------------------------------------------------------
    def put(self, storage_key: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace ``obj``; stamps and returns the stored copy."""
        meta = obj["metadata"]
        key = (storage_key, meta.get("namespace", ""), meta["name"])
        previous = self._objects.get(key)
        stored = copy.deepcopy(obj)
        self.revision += 1
        stored["metadata"]["resourceVersion"] = str(self.revision)
        self._objects[key] = stored
        self._record(Event(self.revision, "MODIFIED" if previous else "ADDED", storage_key, key[1], stored, previous))
        return copy.deepcopy(stored)

    def remove(self, storage_key: str, namespace: str, name: str) -> dict[str, Any] | None:
        previous = self._objects.pop((storage_key, namespace, name), None)
        if previous is None:
            return None
        self.revision += 1
        # the DELETED event carries the object at the revision of its deletion
        final = copy.deepcopy(previous)
        final["metadata"]["resourceVersion"] = str(self.revision)
        self._record(Event(self.revision, "DELETED", storage_key, namespace, final, previous))
        return copy.deepcopy(final)

    def _record(self, event: Event) -> None:
        self._history.append(event)
        while len(self._history) > self.window:
            self._compacted = self._history.popleft().revision
        for watch in list(self._watches):
            watch.offer(event)
        for listener in self._listeners:
            listener(event)

    # watches ---------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """Controllers hear every event, synchronously, after it is recorded."""
        self._listeners.append(listener)

    def watch(self, storage_key: str, namespace: str | None, matches: Predicate, since: int | None) -> Watch:
        """A watch from revision ``since`` (replayed from the history), or from the current state
        (every matching object as ADDED) when ``since`` is None."""
        watch = Watch(storage_key, namespace, matches)
        if since is None:
            for obj in self._iter(storage_key, namespace):
                if matches(obj):
                    watch.queue.put_nowait(("ADDED", obj))
        else:
            if since < self._compacted:
                oldest = self._history[0].revision if self._history else self.revision
                raise expired(since, oldest)
            for event in self._history:
                if event.revision > since:
                    watch.offer(event)
        self._watches.add(watch)
        return watch

    def unwatch(self, watch: Watch) -> None:
        self._watches.discard(watch)
