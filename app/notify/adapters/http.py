"""HTTP plumbing shared by the notifiers: send once, turn the outcome into a DeliveryResult."""

from __future__ import annotations

import base64
import email.utils
import time
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from app.notify.base import (
    BaseNotifier,
    ContactInput,
    DeliveryResult,
    InvalidContact,
    Message,
    Target,
    describe_validation_error,
    mask_address,
)

SettingsModel = TypeVar("SettingsModel", bound=BaseModel)

# The part of a receiver's response kept in the delivery log.
RESPONSE_EXCERPT_CHARS = 512
# A longer Retry-After is capped: a page that waits more than an hour is useless anyway.
MAX_RETRY_AFTER_SECONDS = 3600.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse Retry-After as delay-seconds or an HTTP-date (RFC 9110 section 10.2.3)."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def is_retryable_status(status_code: int) -> bool:
    """429, 5xx and 408 (the receiver timed out reading the request) are worth another try."""
    return status_code in (408, 429) or status_code >= 500


def excerpt(response: httpx.Response) -> str | None:
    return response.text[:RESPONSE_EXCERPT_CHARS] if response.content else None


def classify_response(response: httpx.Response) -> DeliveryResult:
    """Map a receiver's HTTP response to a result: 2xx ok, retryable or permanent failure."""
    if response.is_success:
        return DeliveryResult(
            ok=True, status_code=response.status_code, response_excerpt=excerpt(response)
        )
    return failure_from_response(response)


def failure_from_response(response: httpx.Response, detail: str | None = None) -> DeliveryResult:
    error = f"receiver answered HTTP {response.status_code}"
    if detail:
        error += f": {detail}"
    return DeliveryResult(
        ok=False,
        retryable=is_retryable_status(response.status_code),
        status_code=response.status_code,
        error=error,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        response_excerpt=excerpt(response),
    )


async def exchange(
    http: httpx.AsyncClient, request: httpx.Request
) -> httpx.Response | DeliveryResult:
    """Send ``request``; return the response, or a failed result when none arrived."""
    try:
        return await http.send(request)
    except httpx.TimeoutException:
        return DeliveryResult(ok=False, retryable=True, error="timed out")
    except httpx.UnsupportedProtocol as exc:
        return DeliveryResult(ok=False, error=f"invalid URL: {exc}")
    except httpx.TransportError as exc:
        return DeliveryResult(ok=False, retryable=True, error=f"connection failed: {exc!r}")


async def post(
    http: httpx.AsyncClient,
    url: str,
    *,
    json: object | None = None,
    content: bytes | None = None,
    data: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> httpx.Response | DeliveryResult:
    """Build and send one request, see ``exchange``."""
    try:
        request = http.build_request(
            method, url, json=json, content=content, data=data, headers=headers
        )
    except httpx.InvalidURL as exc:
        return DeliveryResult(ok=False, error=f"invalid URL: {exc}")
    return await exchange(http, request)


def basic_auth_header(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {token}"


def store_url_as_secret(contact: ContactInput, service: str) -> ContactInput:
    """Move a credential-bearing webhook URL from the address to the encrypted secrets.

    The stored address becomes the masked URL, so lists and logs never show the token.
    """
    address = contact.address.strip()
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidContact(
            "address", f"A {service} webhook needs an https URL, got {mask_address(address)!r}."
        )
    contact.secrets["webhook_url"] = address
    contact.address = mask_address(address)
    return contact


def parse_settings(model: type[SettingsModel], contact: ContactInput) -> SettingsModel:
    """Validate a contact method's settings; raises InvalidContact naming the field."""
    try:
        return model.model_validate(contact.settings)
    except ValidationError as exc:
        raise describe_validation_error(exc, "settings") from exc


class IncomingWebhookNotifier(BaseNotifier):
    """A chat notifier that posts its rendered JSON to the contact's incoming-webhook URL."""

    async def send(self, message: Message, target: Target) -> DeliveryResult:
        if failure := self.options_failure():
            return failure
        url = target.secrets.get("webhook_url")
        if not url:
            return DeliveryResult(ok=False, error="the contact method has no webhook URL")
        outcome = await post(
            self.context.http,
            url,
            json=self.render(message, target),
            headers={"User-Agent": self.context.user_agent},
        )
        if isinstance(outcome, DeliveryResult):
            return outcome
        return classify_response(outcome)
