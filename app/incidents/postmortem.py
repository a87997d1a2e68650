"""Render a postmortem as Markdown. No I/O."""

from __future__ import annotations

import re
from collections.abc import Sequence

from app.core.time import isoformat
from app.incidents.models import Incident, Postmortem, TimelineEntry

# Characters that start Markdown or HTML markup inside a line.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#!|~])")


def _inline(text: str) -> str:
    """Return sender text as one literal line of Markdown.

    Titles and timeline messages come from monitoring senders. Unescaped, a title could
    start a heading of its own or add HTML and links to a document people paste into a
    wiki.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _section(title: str, text: str) -> list[str]:
    return [f"## {title}", "", text.strip() or "_Not written yet._", ""]


def render_markdown(
    incident: Incident,
    service_name: str,
    postmortem: Postmortem,
    entries: Sequence[TimelineEntry],
) -> str:
    lines = [
        f"# Postmortem: incident #{incident.number} {_inline(incident.title)}",
        "",
        f"- Service: {_inline(service_name)}",
        f"- Priority: {incident.priority or 'none'}",
        f"- Opened: {isoformat(incident.created_at)}",
    ]
    if incident.acknowledged_at:
        lines.append(f"- Acknowledged: {isoformat(incident.acknowledged_at)}")
    if incident.resolved_at:
        lines.append(f"- Resolved: {isoformat(incident.resolved_at)}")
    lines.append("")
    lines += _section("Summary", postmortem.summary)
    lines += _section("Impact", postmortem.impact)
    lines += _section("Root cause", postmortem.root_cause)
    lines += ["## Timeline", ""]
    lines += [
        f"- {isoformat(entry.at)} {_inline(entry.message)} "
        f"({_inline(entry.actor_name or entry.actor_type)})"
        for entry in entries
    ] or ["_No entries._"]
    lines += ["", "## Action items", ""]
    items = postmortem.action_items or []
    for item in items:
        box = "x" if item.get("done") else " "
        owner = f" (owner: {item['owner']})" if item.get("owner") else ""
        due = f", due {item['due_date']}" if item.get("due_date") else ""
        lines.append(f"- [{box}] {item['description']}{owner}{due}")
    if not items:
        lines.append("_None._")
    lines.append("")
    lines += _section("Lessons learned", postmortem.lessons_learned)
    return "\n".join(lines)
