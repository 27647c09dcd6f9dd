"""``gatrec gate serve``: receive MLflow webhooks and gate champion aliases set in the UI.

MLflow (3.3+, SQL backend) POSTs ``model_version_alias.created`` events signed the Standard
Webhooks way: ``X-MLflow-Signature: v1,<base64 HMAC-SHA256 of "<delivery id>.<timestamp>.<body>">``.
Unsigned, badly signed or stale requests get 401. The handler re-reads the registry instead of
trusting the payload (events can arrive late or twice) and answers only after the gate ran, so a
failure (5xx) makes MLflow retry; repeats are harmless because reconciling is idempotent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mlflow import MlflowClient
from mlflow.webhooks.constants import (
    WEBHOOK_DELIVERY_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
)
from pydantic import BaseModel, ConfigDict, Field, SecretStr

import gatrec.log
from gatrec.registry.names import CHAMPION_ALIAS
from gatrec.registry.policy import Policy
from gatrec.registry.reconcile import reconcile_alias

log = gatrec.log.get(__name__)

ALIAS_EVENT = "model_version_alias.created"
MAX_BODY = 1 << 20


class GateServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    secret: SecretStr
    names: list[str] = Field(min_length=1)  # registered models to gate
    max_skew_s: float = Field(300.0, gt=0)  # reject deliveries signed longer ago than this


def verify_signature(secret: str, delivery_id: str, timestamp: str, body: bytes, signature: str,
                     *, max_skew_s: float, now: float | None = None) -> str | None:
    """None if valid, else why not. ``signature`` may list several space-separated ``v1,<b64>``."""
    if not (delivery_id and timestamp and signature):
        return "missing signature headers"
    try:
        sent = int(timestamp)
    except ValueError:
        return "bad timestamp"
    if abs((now if now is not None else time.time()) - sent) > max_skew_s:
        return "stale timestamp"
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
    for part in signature.split():
        version, _, value = part.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return None
    return "bad signature"


class GateServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, config: GateServerConfig, policy: Policy, client: MlflowClient):
        self.config, self.policy, self.client = config, policy, client
        self.seen: OrderedDict[str, None] = OrderedDict()  # recent delivery ids (replays)
        self.seen_lock = threading.Lock()
        super().__init__((config.host, config.port), _Handler)

    def first_delivery(self, delivery_id: str) -> bool:
        with self.seen_lock:
            if delivery_id in self.seen:
                return False
            self.seen[delivery_id] = None
            while len(self.seen) > 10_000:
                self.seen.popitem(last=False)
            return True

    def forget(self, delivery_id: str) -> None:
        with self.seen_lock:
            self.seen.pop(delivery_id, None)


class _Handler(BaseHTTPRequestHandler):
    server: GateServer

    def log_message(self, format: str, *args: object) -> None:  # structured logs instead
        log.debug("http", client=self.client_address[0], request=format % args)

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200, {"status": "ok"})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._reply(413, {"error": "payload too large"})
        body = self.rfile.read(length)
        delivery = self.headers.get(WEBHOOK_DELIVERY_ID_HEADER, "")
        problem = verify_signature(self.server.config.secret.get_secret_value(), delivery,
                                   self.headers.get(WEBHOOK_TIMESTAMP_HEADER, ""), body,
                                   self.headers.get(WEBHOOK_SIGNATURE_HEADER, ""),
                                   max_skew_s=self.server.config.max_skew_s)
        if problem:
            log.warning("webhook refused", reason=problem, client=self.client_address[0])
            return self._reply(401, {"error": problem})
        try:
            event = json.loads(body)
            kind, data = f"{event['entity']}.{event['action']}", event.get("data") or {}
        except (ValueError, KeyError, TypeError):
            return self._reply(400, {"error": "not an MLflow webhook payload"})
        if kind != ALIAS_EVENT or data.get("alias") != CHAMPION_ALIAS or data.get("name") not in self.server.config.names:
            return self._reply(200, {"status": "ignored", "event": kind})
        if not self.server.first_delivery(delivery):
            return self._reply(200, {"status": "duplicate"})
        log.info("champion alias set", name=data["name"], version=data.get("version"), delivery=delivery)
        try:
            outcome = reconcile_alias(self.server.client, data["name"], self.server.policy, actor="webhook")
        except Exception as exc:  # let MLflow retry this delivery
            self.server.forget(delivery)
            log.error("gate failed", name=data["name"], error=str(exc))
            return self._reply(500, {"error": str(exc)})
        if outcome is None:
            return self._reply(200, {"status": "unchanged"})
        return self._reply(200, {"status": "passed" if outcome.passed else "reverted", "version": outcome.version,
                                 "champion": outcome.champion, "reasons": outcome.reasons})


def register_webhook(client: MlflowClient, url: str, secret: str, name: str = "gatrec-gate") -> str:
    """Create (or update, by name) the MLflow webhook that calls ``gatrec gate serve``; returns its id."""
    existing = [w for w in client.list_webhooks(max_results=1000) if w.name == name]
    if existing:
        hook = client.update_webhook(existing[0].webhook_id, url=url, events=[ALIAS_EVENT], secret=secret,
                                     status="ACTIVE")
    else:
        hook = client.create_webhook(name=name, url=url, events=[ALIAS_EVENT], secret=secret,
                                     description="gatrec promotion gate for champion aliases set by hand")
    log.info("webhook registered", id=hook.webhook_id, url=url, events=ALIAS_EVENT)
    return hook.webhook_id
