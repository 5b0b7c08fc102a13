"""The model a service worker serves, swapped atomically when the registry's alias moves.

A request takes ``holder.current`` once and predicts with that object to the end: a swap only
rebinds the attribute, so requests in flight finish on the old model and none fails. A reload
that cannot complete (registry down, load fails, the new version fails on its own input
example, or it reads other features than the request schema the service started with) leaves
the old model serving and is recorded: ``status()`` (``/readyz`` details), the log, and the
``on_outcome`` callback (``/metrics``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubeline.errors import KubelineError

if TYPE_CHECKING:
    from kubeline.serving.loaded import ServedModel
    from kubeline.settings import Settings

log = logging.getLogger("kubeline.serving")

# Reload outcomes, as /metrics labels them.
SWAPPED = "swapped"
UNCHANGED = "unchanged"
FAILED = "failed"


@dataclass(frozen=True)
class ReloadResult:
    outcome: str  # SWAPPED, UNCHANGED or FAILED
    version: str  # the version serving afterwards
    message: str


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ModelHolder:
    """The served model, how to load the next one, and what the last reload did."""

    def __init__(
        self,
        first: ServedModel,
        load: Callable[[], ServedModel],
        latest_version: Callable[[], str],
        on_outcome: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        self.current = first
        self._load = load
        self._latest_version = latest_version
        self._on_outcome = on_outcome
        self.on_swap: Callable[[ServedModel], None] | None = None
        self._lock = threading.Lock()  # one reload at a time; predictions never take it
        self.serving_since = _now()
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self.last_check_at: str | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        first: ServedModel,
        on_outcome: Callable[[str], None] = lambda outcome: None,
    ) -> ModelHolder:
        """A holder that reloads what the settings name: the pinned version or the alias."""
        from kubeline.serving.loaded import load_served, resolve_version

        def load() -> ServedModel:
            return load_served(
                settings,
                name=first.name,
                version=settings.serve_version,
                alias=settings.serve_alias,
            )

        def latest() -> str:
            if settings.serve_version:
                return settings.serve_version
            return resolve_version(settings, name=first.name, alias=settings.serve_alias)[1]

        return cls(first, load, latest, on_outcome)

    def reload(self, *, force: bool = False) -> ReloadResult:
        """Load the version the registry names now and swap it in, unless it is served already.

        Never raises: a failure keeps the old model and is returned, logged and recorded.
        """
        with self._lock:
            old = self.current
            self.last_check_at = _now()
            try:
                if not force and self._latest_version() == old.version:
                    self._record(None)
                    return self._outcome(UNCHANGED, old.version, "already serving it")
                new = self._load()
                if new.feature_names != old.feature_names:
                    raise KubelineError(
                        f"version {new.version} reads other features ({', '.join(new.feature_names)}) "
                        f"than the request schema this service started with "
                        f"({', '.join(old.feature_names)})",
                        hint="restart the service to serve it",
                    )
            except Exception as exc:  # any failure keeps the old model: that is the contract
                message = (
                    str(exc) if isinstance(exc, KubelineError) else f"{type(exc).__name__}: {exc}"
                )
                message = " ".join(message.split())
                self._record(message)
                log.error("reload failed, still serving version %s: %s", old.version, message)
                return self._outcome(FAILED, old.version, message)
            if new.version == old.version and not force:
                self._record(None)
                return self._outcome(UNCHANGED, old.version, "already serving it")
            self.current = new  # the swap: one attribute rebinding, atomic under the GIL
            self.serving_since = _now()
            self._record(None)
            if self.on_swap is not None:
                self.on_swap(new)
            log.info("now serving %s version %s (was %s)", new.name, new.version, old.version)
            return self._outcome(
                SWAPPED, new.version, f"swapped version {old.version} for {new.version}"
            )

    def _record(self, error: str | None) -> None:
        self.last_error = error
        self.last_error_at = _now() if error else None

    def _outcome(self, outcome: str, version: str, message: str) -> ReloadResult:
        self._on_outcome(outcome)
        return ReloadResult(outcome, version, message)

    def status(self) -> dict[str, Any]:
        """What ``/readyz`` details: which version serves since when, and any failed reload."""
        served = self.current
        return {
            "ready": True,
            "model_name": served.name,
            "model_version": served.version,
            "alias": served.alias,
            "serving_since": self.serving_since,
            "last_check_at": self.last_check_at,
            "last_reload_error": self.last_error,
            "last_reload_error_at": self.last_error_at,
        }

    def start_polling(self, interval: float) -> None:
        """Check the registry every ``interval`` seconds in a daemon thread (0: never)."""
        if interval <= 0 or self._poller is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                self.reload()

        self._poller = threading.Thread(target=loop, name="kubeline-model-poller", daemon=True)
        self._poller.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
            self._poller = None
