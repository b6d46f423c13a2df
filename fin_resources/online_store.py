"""The online feature store: a small key-value store, SQLite by default, Redis in production.

Values are JSON documents (an entity's recent events); the feature logic that reads and writes
them lives in ``fin_assets.lib.features.online_state`` so that it is the same whatever the backend.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

from dagster import ConfigurableResource


class SqliteKeyValueStore:
    """One table ``online_state(key, value)`` in a SQLite file."""

    def __init__(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._con.execute("PRAGMA journal_mode=WAL")
        # WAL with NORMAL sync: a commit is not fsynced (an OS crash may lose the last real-time
        # updates, which the next daily refresh rewrites), so recording a transaction costs
        # microseconds instead of a disk flush on the authorisation path.
        self._con.execute("PRAGMA synchronous=NORMAL")
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS online_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )

    def get_many(self, keys: list[str]) -> list[str | None]:
        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        rows = dict(
            self._con.execute(
                f"SELECT key, value FROM online_state WHERE key IN ({marks})", keys
            ).fetchall()
        )
        return [rows.get(k) for k in keys]

    def put_many(self, items: Mapping[str, str]) -> None:
        self._con.execute("BEGIN")
        self._con.executemany(
            "INSERT INTO online_state (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            list(items.items()),
        )
        self._con.execute("COMMIT")

    def replace_all(self, items: Mapping[str, str]) -> None:
        """Swap the whole state in one transaction: readers see the old or the new, never a mix."""
        self._con.execute("BEGIN")
        self._con.execute("DELETE FROM online_state")
        self._con.executemany(
            "INSERT INTO online_state (key, value) VALUES (?, ?)", list(items.items())
        )
        self._con.execute("COMMIT")

    def close(self) -> None:
        self._con.close()


class RedisKeyValueStore:
    """Keys under a prefix in Redis; a full replace swaps a generation pointer atomically."""

    def __init__(self, url: str, prefix: str = "fin:online") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, decode_responses=True)
        self._prefix = prefix

    def _generation(self) -> str:
        return str(self._redis.get(f"{self._prefix}:generation") or "0")

    def _key(self, generation: str, key: str) -> str:
        return f"{self._prefix}:{generation}:{key}"

    def get_many(self, keys: list[str]) -> list[str | None]:
        if not keys:
            return []
        generation = self._generation()
        values = self._redis.mget([self._key(generation, k) for k in keys])
        return [None if v is None else str(v) for v in values]

    def put_many(self, items: Mapping[str, str]) -> None:
        generation = self._generation()
        self._redis.mset({self._key(generation, k): v for k, v in items.items()})

    def replace_all(self, items: Mapping[str, str]) -> None:
        old = self._generation()
        new = str(int(old) + 1)
        pipe = self._redis.pipeline(transaction=False)
        for chunk in _chunks(list(items.items()), 5000):
            pipe.mset({self._key(new, k): v for k, v in chunk})
        pipe.execute()
        self._redis.set(f"{self._prefix}:generation", new)
        stale = list(self._redis.scan_iter(match=f"{self._prefix}:{old}:*", count=5000))
        for chunk in _chunks(stale, 5000):
            self._redis.delete(*chunk)

    def close(self) -> None:
        self._redis.close()


def _chunks(items: list, size: int) -> Iterable[list]:  # type: ignore[type-arg]
    for start in range(0, len(items), size):
        yield items[start : start + size]


def open_store(url: str) -> SqliteKeyValueStore | RedisKeyValueStore:
    """``sqlite:///path`` or ``redis://host:port/db``."""
    if url.startswith("sqlite:///"):
        return SqliteKeyValueStore(url.removeprefix("sqlite:///"))
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisKeyValueStore(url)
    raise ValueError(f"FIN_ONLINE_STORE_URL={url!r}: use sqlite:///PATH or redis://HOST:PORT/DB")


class OnlineStoreResource(ConfigurableResource):
    """The online feature store chosen by ``FIN_ONLINE_STORE_URL``."""

    url: str

    def open(self) -> SqliteKeyValueStore | RedisKeyValueStore:
        return open_store(self.url)
