"""Send pages by e-mail over SMTP (aiosmtplib): plain-text and HTML parts, one thread per incident.

Every mail about an incident carries ``In-Reply-To`` and ``References`` naming the same
made-up root Message-ID and keeps the same subject, which is what Gmail, Outlook,
Thunderbird and Apple Mail group conversations by. The state goes in the body.
"""

from __future__ import annotations

import ssl
import uuid
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from pathlib import Path
from typing import Any, ClassVar, Literal

import aiosmtplib
import jinja2
from email_validator import EmailNotValidError, validate_email
from pydantic import Field, SecretStr

from app.core.text import truncate
from app.core.time import utcnow
from app.notify import render
from app.notify.base import (
    NOTIFICATION_DIGEST,
    NOTIFICATION_TEST,
    BaseNotifier,
    ContactInput,
    DeliveryResult,
    InvalidContact,
    Message,
    NotifierOptions,
    Target,
)

SUBJECT_MAX_CHARS = 200
# X-Tocsin-Event of the mail that carries a verification code.
VERIFICATION_EVENT = "contact_method.verification"
SMTP_COMPLETED = 250
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
    keep_trailing_newline=True,
)


class EmailOptions(NotifierOptions):
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    # starttls upgrades a plain connection with STARTTLS (port 587). tls encrypts from the
    # first byte (port 465). none sends in clear text, for a relay on the same host only.
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_address: str = "Tocsin <tocsin@localhost>"
    # A PEM file of CA certificates to trust instead of the system's, for a private CA.
    ca_file: Path | None = None
    validate_certs: bool = True
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


def _domain(from_address: str) -> str:
    addresses = getaddresses([from_address])
    address = addresses[0][1] if addresses else ""
    return address.rsplit("@", 1)[-1] if "@" in address else "tocsin.invalid"


def thread_id(incident_id: str, domain: str) -> str:
    """Return the root Message-ID every mail about one incident refers to."""
    return f"<incident.{incident_id}@{domain}>"


class EmailNotifier(BaseNotifier):
    kind: ClassVar[str] = "email"
    options_model: ClassVar[type[NotifierOptions]] = EmailOptions
    options: EmailOptions

    @classmethod
    def validate_contact(cls, contact: ContactInput) -> ContactInput:
        try:
            checked = validate_email(contact.address.strip(), check_deliverability=False)
        except EmailNotValidError as exc:
            raise InvalidContact("address", f"Invalid e-mail address: {exc}") from exc
        if contact.settings:
            raise InvalidContact(
                "settings", "E-mail contact methods take no settings; send an empty object."
            )
        contact.address = checked.normalized
        return contact

    def render(self, message: Message, target: Target) -> EmailMessage:
        domain = _domain(self.options.from_address)
        incident = message.incident
        mail = EmailMessage()
        mail["From"] = self.options.from_address
        mail["To"] = Address(addr_spec=target.address)
        mail["Subject"] = self._subject(message)
        mail["Date"] = format_datetime(utcnow())
        mail["Message-ID"] = f"<{message.notification_id}@{domain}>"
        if message.event not in (NOTIFICATION_DIGEST, NOTIFICATION_TEST) and incident.get("id"):
            root = thread_id(str(incident["id"]), domain)
            mail["In-Reply-To"] = root
            mail["References"] = root
            mail["X-Tocsin-Incident-Id"] = str(incident["id"])
        # Ask auto-responders such as out-of-office replies not to answer: Auto-Submitted is
        # RFC 3834's header, X-Auto-Response-Suppress is Microsoft Exchange's.
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-Auto-Response-Suppress"] = "All"
        mail["X-Tocsin-Event"] = message.event
        mail["X-Tocsin-Notification-Id"] = message.notification_id
        variables = self._variables(message, target)
        mail.set_content(_templates.get_template("email.txt.j2").render(variables))
        mail.add_alternative(
            _templates.get_template("email.html.j2").render(variables), subtype="html"
        )
        return mail

    def _subject(self, message: Message) -> str:
        if message.event == NOTIFICATION_DIGEST:
            return truncate(f"[Tocsin] {render.headline(message)}", SUBJECT_MAX_CHARS)
        # The same subject for every event keeps one thread in clients that compare it.
        return truncate(f"[Tocsin] {render.incident_name(message.incident)}", SUBJECT_MAX_CHARS)

    def _variables(self, message: Message, target: Target) -> dict[str, Any]:
        return {
            "headline": render.headline(message),
            "facts": render.facts(message),
            "digest": render.digest_lines(message),
            "links": render.link_items(message),
            "color": render.color(message),
            "recipient": message.recipient.get("name") or target.address,
        }

    def render_verification(self, target: Target, code: str) -> EmailMessage:
        """Build the mail that carries a contact method's one-time verification code."""
        domain = _domain(self.options.from_address)
        mail = EmailMessage()
        mail["From"] = self.options.from_address
        mail["To"] = Address(addr_spec=target.address)
        mail["Subject"] = "[Tocsin] Your verification code"
        mail["Date"] = format_datetime(utcnow())
        mail["Message-ID"] = f"<verification.{uuid.uuid4()}@{domain}>"
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-Auto-Response-Suppress"] = "All"
        mail["X-Tocsin-Event"] = VERIFICATION_EVENT
        mail.set_content(
            f"Your Tocsin verification code is {code}.\n\n"
            "Enter it in Tocsin to get pages at this address. If you did not expect this "
            "mail, ignore it.\n"
        )
        return mail

    async def send(self, message: Message, target: Target) -> DeliveryResult:
        if failure := self.options_failure():
            return failure
        return await self._deliver(self.render(message, target))

    async def send_verification(self, target: Target, code: str) -> DeliveryResult:
        """Mail a one-time code, so contact methods are paged only once a person enters it."""
        if failure := self.options_failure():
            return failure
        return await self._deliver(self.render_verification(target, code))

    async def _deliver(self, mail: EmailMessage) -> DeliveryResult:
        if not self.options.host:
            return DeliveryResult(
                ok=False, error="no SMTP server: set TOCSIN_NOTIFIERS__EMAIL__HOST"
            )
        client = self._client()
        try:
            async with client:
                _, reply = await client.send_message(mail)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused else None
            return _smtp_failure(code, refused.message if refused else str(exc))
        except aiosmtplib.SMTPResponseException as exc:
            return _smtp_failure(exc.code, exc.message)
        except (aiosmtplib.SMTPTimeoutError, TimeoutError):
            return DeliveryResult(ok=False, retryable=True, error="SMTP server timed out")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return DeliveryResult(
                ok=False, retryable=True, error=f"SMTP connection failed: {exc!r}"
            )
        # aiosmtplib raises unless the server replied 250 to DATA, and it returns only the
        # text of that reply.
        return DeliveryResult(
            ok=True,
            status_code=SMTP_COMPLETED,
            response_excerpt=reply[:200] or None,
            external_ref={"message_id": mail["Message-ID"]},
        )

    def _client(self) -> Any:
        options = self.options
        port = options.port or DEFAULT_PORTS[options.security]
        tls_context = None
        if options.security != "none":
            tls_context = ssl.create_default_context(
                cafile=str(options.ca_file) if options.ca_file else None
            )
            if not options.validate_certs:
                tls_context.check_hostname = False
                tls_context.verify_mode = ssl.CERT_NONE
        factory = self.context.smtp_factory or aiosmtplib.SMTP
        return factory(
            hostname=options.host,
            port=port,
            use_tls=options.security == "tls",
            start_tls=options.security == "starttls",
            tls_context=tls_context,
            timeout=options.timeout_seconds,
            username=options.username,
            password=options.password.get_secret_value() if options.password else None,
        )


def _smtp_failure(code: int | None, text: str) -> DeliveryResult:
    """4xx SMTP replies are transient (RFC 5321 section 4.2.1); 5xx are permanent."""
    retryable = code is None or 400 <= code < 500
    return DeliveryResult(
        ok=False,
        retryable=retryable,
        status_code=code,
        error=f"SMTP server answered {code}: {text}"[:500],
    )
