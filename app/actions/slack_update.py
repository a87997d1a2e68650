"""Update the Slack message whose button a responder pressed, after the action committed.

The update runs as a durable job, so it leaves only after the commit and is retried if
the request to Slack fails. What the message says is up to a ``SlackMessageUpdater``: the
default posts a plain message with the outcome and the buttons that still apply to the
message's ``response_url``; a Slack notifier that renders richer messages replaces it
with ``set_updater``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from app.actions import catalog
from app.core.logging import get_logger
from app.incidents.paging import PagingContext
from app.jobs.queue import Job
from app.notify.adapters.slack import escape_mrkdwn

log = get_logger(__name__)

SLACK_MESSAGE_UPDATE = "slack.message_update"
# Prefix of the action_id of Tocsin's Slack buttons; the rest is an action name.
ACTION_ID_PREFIX = "tocsin:"


@dataclass(frozen=True, slots=True)
class SlackMessageUpdate:
    response_url: str
    # The outcome, e.g. "Acknowledged by Ana at 09:14 UTC".
    text: str
    # True: replace the message for everyone. False: an ephemeral note to the presser.
    replace_original: bool
    # number, title, status, priority, service and id; empty for a note without an incident.
    incident: dict[str, Any] = field(default_factory=dict)
    # Names of the actions that still apply, for the buttons of the updated message.
    actions: list[str] = field(default_factory=list)

    def to_payload(self) -> dict[str, Any]:
        return {
            "response_url": self.response_url,
            "text": self.text,
            "replace_original": self.replace_original,
            "incident": self.incident,
            "actions": self.actions,
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> SlackMessageUpdate:
        return cls(
            response_url=data["response_url"],
            text=data["text"],
            replace_original=bool(data["replace_original"]),
            incident=dict(data.get("incident") or {}),
            actions=list(data.get("actions") or []),
        )


class SlackMessageUpdater(Protocol):
    async def update(self, update: SlackMessageUpdate, http: httpx.AsyncClient) -> None:
        """Send the update; raise to have the job retried."""
        ...


def render_message(update: SlackMessageUpdate) -> dict[str, Any]:
    """Build the response_url body: the outcome under the incident and the buttons that apply."""
    if not update.replace_original:
        return {
            "response_type": "ephemeral",
            "replace_original": False,
            "text": escape_mrkdwn(update.text),
        }
    incident = update.incident
    # Titles and names come from alert senders: escaped, they cannot mention @channel or
    # disguise a link in Slack's mrkdwn.
    title = escape_mrkdwn(str(incident.get("title", "")))
    service = escape_mrkdwn(str(incident.get("service", "")))
    heading = (
        f"*#{incident.get('number')} {title}*\n"
        f"{service} · {incident.get('priority') or 'no priority'}"
        f" · {incident.get('status', '')}"
    )
    text = escape_mrkdwn(update.text)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": heading}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]},
    ]
    buttons = [
        {
            "type": "button",
            "text": {"type": "plain_text", "text": catalog.ACTIONS[name].label},
            "action_id": ACTION_ID_PREFIX + name,
            "value": str(incident.get("id", "")),
        }
        for name in update.actions
        if name in catalog.ACTIONS and catalog.ACTIONS[name].changes_state
    ]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return {"replace_original": True, "text": text, "blocks": blocks}


class ResponseUrlUpdater:
    async def update(self, update: SlackMessageUpdate, http: httpx.AsyncClient) -> None:
        response = await http.post(update.response_url, json=render_message(update))
        response.raise_for_status()


_updater: SlackMessageUpdater = ResponseUrlUpdater()


def set_updater(updater: SlackMessageUpdater) -> None:
    """Replace how Slack messages are updated, e.g. with the Slack notifier's renderer."""
    global _updater
    _updater = updater


def update_job(update: SlackMessageUpdate) -> Job:
    return Job(SLACK_MESSAGE_UPDATE, update.to_payload())


async def run_update(context: PagingContext, payload: dict[str, Any]) -> None:
    """Job handler: send one update, unless its URL is not Slack's (or the configured fake)."""
    update = SlackMessageUpdate.from_payload(payload)
    prefix = context.settings.actions.slack_response_url_prefix
    if not update.response_url.startswith(prefix):
        log.warning("slack.update_skipped", reason=f"response_url does not start with {prefix}")
        return
    timeout = httpx.Timeout(context.settings.delivery_timeout_seconds)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
        await _updater.update(update, http)
    log.info("slack.message_updated", replace_original=update.replace_original)
