"""Where a study lives: Optuna storages from a URL, and what a study remembers about itself.

- No URL: an SQLite file ``study.db`` in the study's output folder (embedded, nothing to
  start; several local workers share it).
- ``sqlite:///...``, ``postgresql://...``, ``mysql://...``: any database URL SQLAlchemy
  understands (:class:`optuna.storages.RDBStorage`), for workers on many machines.
- ``journal:PATH``: an append-only journal file
  (:class:`optuna.storages.JournalStorage`), for workers on a shared filesystem without a
  database server (e.g. SLURM array jobs).

A study records the settings that decide what its objective measures (search space, base
configuration, objective, data); continuing it with different ones is an error, so one
study never mixes trials that cannot be compared.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from geneae.errors import ConfigError
from geneae.runlock import process_alive

DEFAULT_DB = "study.db"
# Seconds a worker waits for SQLite's lock: several local workers write the same file.
SQLITE_TIMEOUT_S = 120
# The study attribute holding what must match when a study is continued, and its keys.
IDENTITY = "geneae_identity"
IDENTITY_KEYS = ("space", "base_config", "objective", "data")


def storage_url(storage: str | None, out_dir: Path) -> str:
    """The storage URL of a study: ``storage`` as given, or SQLite in ``out_dir``."""
    if storage:
        return storage
    return f"sqlite:///{(out_dir / DEFAULT_DB).resolve()}"


def open_storage(url: str) -> Any:
    """An Optuna storage for ``url`` (see the module docstring)."""
    import optuna

    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:").removeprefix("//"))
        if not path.parent.is_dir():
            raise ConfigError(
                f"--storage {url!r}: folder {path.parent} does not exist; create it first."
            )
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise ConfigError(
            f"--storage {url!r} is not a storage URL; use sqlite:///PATH, postgresql://..., "
            "mysql://... or journal:PATH."
        )
    engine: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy, drivers and OS errors alike
        raise ConfigError(
            f"--storage {url!r}: cannot open the study storage ({type(exc).__name__}: {exc})."
        ) from None


def identity(space: dict[str, str], base_yaml: str, objective: str, data: dict[str, Any]) -> dict:
    """The study attributes that say what its trials measure."""
    return {
        "space": json.dumps(space, sort_keys=True),
        "base_config": base_yaml,
        "objective": objective,
        "data": json.dumps(data, sort_keys=True),
    }


def check_identity(study: Any, wanted: dict[str, str], where: str) -> None:
    """Record ``wanted`` on a new study; refuse to continue one started differently.

    The identity is one attribute, written in one step: a worker starting at the same
    moment as the one that created the study sees all of it or none (and, if none, writes
    the same). Two workers that start one new study at the same moment with *different*
    settings may both go on; any later worker with other settings is refused.
    """
    stored = study.user_attrs.get(IDENTITY)
    if stored is None:
        study.set_user_attr(IDENTITY, wanted)
        stored = study.user_attrs.get(IDENTITY)
    for key in IDENTITY_KEYS:
        if stored.get(key) != wanted[key]:
            if key == "base_config":
                what = _config_differences(stored.get(key), wanted[key])
            else:
                what = f"{_short(stored.get(key))} then, {_short(wanted[key])} now"
            raise ConfigError(
                f"study {study.study_name!r} in {where} was started with another {_WHAT[key]} "
                f"({what}); continue it with the same settings, or start a new one with "
                "another --out or --study-name."
            )


_WHAT = {
    "space": "search space",
    "base_config": "base configuration",
    "objective": "objective",
    "data": "data (its samples, genes or their names differ)",
}


def _config_differences(then: Any, now: str) -> str:
    """Where two base configurations (YAML) differ, by dotted key.

    E.g. ``train.max_epochs: 4 then, 6 now``.
    """
    try:
        old, new = _flat(yaml.safe_load(str(then))), _flat(yaml.safe_load(now))
    except yaml.YAMLError:
        return f"{_short(then)} then, {_short(now)} now"
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    shown = [f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in keys[:4]]
    more = f"; {len(keys) - 4} more" if len(keys) > 4 else ""
    return "; ".join(shown) + more


def _flat(values: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(values, dict):
        return {prefix: values} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in values.items():
        out.update(
            _flat(value, f"{prefix}{key}.")
            if isinstance(value, dict)
            else {f"{prefix}{key}": value}
        )
    return out


def _short(value: Any, n: int = 120) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= n else text[: n - 3] + "..."


# -- liveness of running trials -----------------------------------------------------------
# A worker stamps a trial (worker_attrs) right after asking for it; a running trial still
# without a heartbeat this many seconds after it started lost its worker in between. Far
# above a stamp's few milliseconds; a worker whose stamp comes later (SQLite's lock held
# that long) finds its trial failed and asks for another (geneae.tune.worker.work).
UNSTAMPED_GRACE_S = 60.0


def worker_attrs() -> dict[str, Any]:
    """What a worker writes on each trial it runs: host, process id, time of last news."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time()}


def is_stale(
    attrs: dict[str, Any],
    stale_after: float,
    now: float | None = None,
    *,
    started: float | None = None,
) -> bool:
    """Whether a RUNNING trial's worker is gone.

    On this host: its process no longer exists. Elsewhere: no news for ``stale_after``
    seconds (a trial reports after every epoch). A trial never stamped (its worker stopped
    between creating and stamping it): ``started`` (a Unix time) more than
    :data:`UNSTAMPED_GRACE_S` ago.
    """
    now = time.time() if now is None else now
    beat = attrs.get("heartbeat")
    if beat is None:
        return started is not None and now - started > min(UNSTAMPED_GRACE_S, stale_after)
    if now - float(beat) > stale_after:
        return True
    if attrs.get("host") == socket.gethostname():
        return not process_alive(int(attrs.get("pid", -1)))
    return False


def is_unstamped(attrs: dict[str, Any]) -> bool:
    """Whether a running trial carries no heartbeat yet (just created, or orphaned)."""
    return "heartbeat" not in attrs


def started_at(trial: Any) -> float | None:
    """A frozen trial's start as a Unix time (Optuna stores local, naive datetimes)."""
    return None if trial.datetime_start is None else trial.datetime_start.timestamp()


def load_study(url: str, name: str) -> Any:
    """The study ``name`` in the storage at ``url``."""
    import optuna

    with quiet_optuna():
        return optuna.load_study(study_name=name, storage=open_storage(url))


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's own info lines (trial finished, study created) are ours to print."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)
