"""Fake chat, SMS and mail services on 127.0.0.1 that speak enough of each real protocol.

Each HTTP fake is a ``respond`` function for ``Receiver``: it checks what the real
service checks (a token, a signature, required fields) and responds in the real shape.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import itertools
import json
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.responses import JSONResponse, Response

from tests.support.receiver import ReceivedRequest

Respond = Callable[[ReceivedRequest], Response]
_counter = itertools.count(1)


def slack_web_api(token: str) -> Respond:
    """chat.postMessage and chat.update: check the bearer token and the channel."""

    def respond(request: ReceivedRequest) -> Response:
        if request.headers.get("authorization") != f"Bearer {token}":
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        body = request.json()
        if not body.get("channel"):
            return JSONResponse({"ok": False, "error": "channel_not_found"})
        if body["channel"] == "C404":
            return JSONResponse({"ok": False, "error": "channel_not_found"})
        if request.path.endswith("/chat.postMessage"):
            ts = f"1700000000.{next(_counter):06d}"
            return JSONResponse({"ok": True, "channel": body["channel"], "ts": ts})
        if request.path.endswith("/chat.update"):
            if not body.get("ts"):
                return JSONResponse({"ok": False, "error": "message_not_found"})
            return JSONResponse({"ok": True, "channel": body["channel"], "ts": body["ts"]})
        return JSONResponse({"ok": False, "error": "unknown_method"}, status_code=404)

    return respond


def telegram_bot_api(token: str) -> Respond:
    """sendMessage: the token in the path, chat_id and text required, as the Bot API does."""

    def respond(request: ReceivedRequest) -> Response:
        if not request.path.startswith(f"/bot{token}/"):
            return JSONResponse(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401
            )
        body = request.json()
        if not body.get("chat_id") or not body.get("text"):
            return JSONResponse(
                {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: message text is empty",
                },
                status_code=400,
            )
        return JSONResponse(
            {
                "ok": True,
                "result": {
                    "message_id": next(_counter),
                    "chat": {"id": body["chat_id"]},
                    "text": body["text"],
                },
            }
        )

    return respond


def telegram_rate_limited(retry_after: int) -> Response:
    return JSONResponse(
        {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {retry_after}",
            "parameters": {"retry_after": retry_after},
        },
        status_code=429,
    )


def discord_webhook() -> Respond:
    """Execute (POST ?wait=true returns the message) and edit (PATCH .../messages/{id})."""

    def respond(request: ReceivedRequest) -> Response:
        body = request.json()
        if request.method == "PATCH":
            message_id = request.path.rsplit("/", 1)[-1]
            return JSONResponse({"id": message_id, **body})
        if not body.get("content") and not body.get("embeds"):
            return JSONResponse({"message": "Cannot send an empty message", "code": 50006}, 400)
        if "wait=true" not in request.query:
            return Response(status_code=204)
        return JSONResponse({"id": str(1_000_000 + next(_counter)), **body})

    return respond


def twilio_api(account_sid: str, auth_token: str) -> Respond:
    """POST /2010-04-01/Accounts/{sid}/Messages.json with basic auth and a form body."""

    def respond(request: ReceivedRequest) -> Response:
        expected = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401}, 401)
        if request.path != f"/2010-04-01/Accounts/{account_sid}/Messages.json":
            return JSONResponse({"code": 20404, "message": "Not found", "status": 404}, 404)
        form = request.form()
        if not form.get("To", "").startswith("+") or not form.get("Body"):
            return JSONResponse(
                {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}, 400
            )
        return JSONResponse(
            {"sid": f"SM{next(_counter):032d}", "status": "queued", "to": form["To"]},
            status_code=201,
        )

    return respond


def signed_webhook(secret: str) -> Respond:
    """Accept only requests whose X-Tocsin-Signature has a v1 value made with ``secret``."""

    def respond(request: ReceivedRequest) -> Response:
        if not webhook_signature_valid(
            secret, request.headers.get("x-tocsin-signature", ""), request.body
        ):
            return Response(b"bad signature", status_code=401)
        return Response(b"ok")

    return respond


def webhook_signature_valid(secret: str, header: str, body: bytes) -> bool:
    """Verify a signature header the way a receiver would: any v1 value may match."""
    parts = [part.split("=", 1) for part in header.split(",") if "=" in part]
    timestamps = [value for key, value in parts if key == "t"]
    if len(timestamps) != 1:
        return False
    signed = timestamps[0].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, value) for key, value in parts if key == "v1")


@dataclass
class SmtpRecorder:
    """An aiosmtpd handler that stores every mail, after replying with the queued SMTP codes."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    replies: deque[str] = field(default_factory=deque)
    attempts: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.replies:
            return self.replies.popleft()
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 Message accepted for delivery"


@dataclass(frozen=True, slots=True)
class Certificate:
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def self_signed_certificate(directory: Path) -> Certificate:
    """Make a certificate for 127.0.0.1 and localhost, its own CA, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "smtp-cert.pem"
    key_file = directory / "smtp-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_file, key_file)


def json_body(request: ReceivedRequest) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(request.body)
    return value
