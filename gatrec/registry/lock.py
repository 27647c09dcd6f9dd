"""A cross-process promotion lock that works against any MLflow registry, local or remote.

Creating a registered model is atomic (the name is the primary key of the registry table, on
SQLite and PostgreSQL alike), so the lock *is* a registered model named
``<model>.promotion-lock``: whoever creates it holds it, deleting it releases it. Unlike a
set-then-reread tag protocol there is no settle delay and no window where two writers both win.
The holder (actor, host, PID) and an expiry are stored as tags at creation. A lock left behind by a
crashed process is removed by the next contender: at once when its holder provably died (same host, no
such PID), else once it has expired.
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
from gatrec.fsutil import process_gone, this_host

log = gatrec.log.get(__name__)

LOCK_SUFFIX = ".promotion-lock"
OWNER_TAG, EXPIRES_TAG = "gatrec.lock.owner", "gatrec.lock.expires"
HOST_TAG, PID_TAG = "gatrec.lock.host", "gatrec.lock.pid"


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
        self.holder: dict[str, str] = {}  # the tags of the last holder seen, for the timeout message

    def _try_create(self) -> bool:
        tags = {OWNER_TAG: self.owner, EXPIRES_TAG: f"{time.time() + self.ttl_s:.3f}",
                HOST_TAG: this_host(), PID_TAG: str(os.getpid())}
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

    def _remove_if_stale(self) -> None:
        try:
            held = self.client.get_registered_model(self.name)
        except MlflowException as exc:
            if _code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return
            raise
        self.holder = dict(held.tags)
        expires = float(held.tags.get(EXPIRES_TAG) or 0.0)
        pid = held.tags.get(PID_TAG, "")
        dead = pid.isdigit() and process_gone(held.tags.get(HOST_TAG, ""), int(pid))
        if dead or expires < time.time():
            log.warning("stale promotion lock removed", lock=self.name, owner=held.tags.get(OWNER_TAG),
                        reason="holder process is gone" if dead else "expired")
            with contextlib.suppress(MlflowException):
                self.client.delete_registered_model(self.name)

    def _holder_text(self) -> str:
        owner = self.holder.get(OWNER_TAG)
        if not owner:
            return "another promotion is running"
        left = float(self.holder.get(EXPIRES_TAG) or 0.0) - time.time()
        return f"held by {owner} (expires in {max(left, 0):.0f}s)"

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        told = False
        while not self._try_create():
            self._remove_if_stale()
            if not told and self.holder.get(OWNER_TAG):
                log.info("waiting for the promotion lock", lock=self.name, holder=self.holder[OWNER_TAG])
                told = True
            if time.monotonic() > deadline:
                raise GatrecError(f"could not take the promotion lock {self.name!r} within "
                                  f"{self.timeout_s:.0f}s: {self._holder_text()} (if that process died on "
                                  "another host, delete that registered model)")
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
