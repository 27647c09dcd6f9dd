"""A cross-process promotion lock that works against any MLflow registry, local or remote.

Creating a registered model is atomic (the name is the primary key of the registry table, on
SQLite and PostgreSQL alike), so the lock *is* a registered model named
``<model>.promotion-lock``: whoever creates it holds it, deleting it releases it. Unlike a
set-then-reread tag protocol there is no settle delay and no window where two writers both win.
The holder and an expiry are stored as tags at creation; a lock left behind by a crashed process
is removed by the next contender once it has expired.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
import uuid

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import gatrec.log
from gatrec.errors import GatrecError

log = gatrec.log.get(__name__)

LOCK_SUFFIX = ".promotion-lock"
OWNER_TAG, EXPIRES_TAG = "gatrec.lock.owner", "gatrec.lock.expires"


def lock_name(model_name: str) -> str:
    return f"{model_name}{LOCK_SUFFIX}"


def _code(exc: MlflowException) -> str:
    return str(exc.error_code)


class PromotionLock:
    """``with PromotionLock(client, "gatrec", actor="cli"):`` serialises champion changes."""

    def __init__(self, client: MlflowClient, model_name: str, *, actor: str, ttl_s: float = 120.0,
                 timeout_s: float = 60.0, poll_s: float = 0.2):
        self.client, self.name = client, lock_name(model_name)
        self.owner = f"{actor}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.ttl_s, self.timeout_s, self.poll_s = ttl_s, timeout_s, poll_s

    def _try_create(self) -> bool:
        tags = {OWNER_TAG: self.owner, EXPIRES_TAG: f"{time.time() + self.ttl_s:.3f}"}
        try:
            self.client.create_registered_model(
                self.name, tags=tags, description="Held by gatrec while it changes the champion.")
            return True
        except MlflowException as exc:
            if _code(exc) == "RESOURCE_ALREADY_EXISTS":
                return False
            if "locked" in str(exc).lower():  # SQLite writer contention: just try again
                return False
            raise

    def _remove_if_expired(self) -> None:
        try:
            held = self.client.get_registered_model(self.name)
        except MlflowException as exc:
            if _code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return
            raise
        expires = float(held.tags.get(EXPIRES_TAG) or 0.0)
        if expires < time.time():
            log.warning("stale promotion lock removed", lock=self.name, owner=held.tags.get(OWNER_TAG))
            with contextlib.suppress(MlflowException):
                self.client.delete_registered_model(self.name)

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not self._try_create():
            self._remove_if_expired()
            if time.monotonic() > deadline:
                raise GatrecError(f"could not take the promotion lock {self.name!r} within "
                                  f"{self.timeout_s:.0f}s; another promotion is running (or delete "
                                  "that registered model if its holder died)")
            time.sleep(self.poll_s * (0.5 + random.random()))
        log.debug("promotion lock taken", lock=self.name, owner=self.owner)

    def release(self) -> None:
        try:
            held = self.client.get_registered_model(self.name)
            if held.tags.get(OWNER_TAG) == self.owner:
                self.client.delete_registered_model(self.name)
        except MlflowException as exc:
            if _code(exc) != "RESOURCE_DOES_NOT_EXIST":
                raise

    def __enter__(self) -> PromotionLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
