"""SQLite cache of model calls, so an interrupted evaluation resumes and a rerun costs nothing.

Keys hash everything that determines a response: the model (and API base), the request kind
(``sample`` or ``exact``), the prompt, the options and the sampling settings. Values are JSON.
WAL mode and a busy timeout let several processes (or concurrent runs) share one file; inside
a process a lock serialises access to the one connection.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from .._paths import cache_dir

__all__ = ["ResponseCache", "NullCache", "cache_key", "default_cache_path"]


def default_cache_path() -> Path:
    return cache_dir() / "eval-cache.sqlite3"


def cache_key(model: str, kind: str, payload: dict) -> str:
    body = json.dumps({"model": model, "kind": kind, **payload}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=60000")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                         "kind TEXT NOT NULL, value TEXT NOT NULL, created REAL NOT NULL)")
        self.hits = 0
        self.writes = 0

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, Any] = {}
        with self._lock:
            # SQLite caps bound parameters; 500 is far below every build's limit.
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                rows = self._db.execute(f"SELECT key, value FROM responses WHERE key IN ({','.join('?' * len(chunk))})",
                                        chunk).fetchall()
                out.update((k, json.loads(v)) for k, v in rows)
        self.hits += len(out)
        return out

    def get(self, key: str) -> Any | None:
        return self.get_many([key]).get(key)

    def put_many(self, items: Iterable[tuple[str, str, str, Any]]) -> None:
        """Store (key, model, kind, value) rows in one transaction."""
        rows = [(k, m, kind, json.dumps(v, ensure_ascii=False), time.time()) for k, m, kind, v in items]
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self.writes += len(rows)

    def put(self, key: str, model: str, kind: str, value: Any) -> None:
        self.put_many([(key, model, kind, value)])

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class NullCache:
    """``--no-cache``: remembers nothing."""

    path = None
    hits = 0
    writes = 0

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        return {}

    def get(self, key: str) -> Any | None:
        return None

    def put_many(self, items) -> None:
        pass

    def put(self, key, model, kind, value) -> None:
        pass

    def __len__(self) -> int:
        return 0

    def close(self) -> None:
        pass
