"""The data subject's access report (AVG art. 15): which organisations registered, when
matches existed, who was told and who looked, and when — built from the audit log only.
Pure."""

from __future__ import annotations

import html
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.contracts import AuditAction, AuditEvent
from shared.i18n import N_, _, active, moment, use_language


def subject_report(
    request_id: uuid.UUID, events: Sequence[AuditEvent], generated_at: datetime
) -> dict[str, Any]:
    ordered = sorted(events, key=lambda e: (e.occurred_at, str(e.event_id)))
    registrations = [
        {"organisation": e.actor.organisation, "registered_at": e.occurred_at.isoformat()}
        for e in ordered
        if e.source_system == "intake" and e.object_type == "signal"
        and e.action is AuditAction.CREATE
    ]  # fmt: skip
    matches: dict[str, dict[str, Any]] = {}
    for e in ordered:
        if e.source_system != "matching" or e.object_type != "match" or not e.object_id:
            continue
        match = matches.setdefault(
            e.object_id, {"match_id": e.object_id, "raised_at": None, "ended_at": None}
        )
        match.setdefault("kind", "family" if "family match" in e.purpose else "person")
        if e.action is AuditAction.CREATE:
            match["raised_at"] = e.occurred_at.isoformat()
        elif e.action is AuditAction.DELETE:
            # Dissolved (also by a merge), or ended for this subject (its registrations
            # ended or it was erased) while the match went on for others.
            match["ended_at"] = e.occurred_at.isoformat()
    told = [
        {"worker": e.on_behalf_of, "told_at": e.occurred_at.isoformat()}
        for e in ordered
        # An alert, or a line of a team lead's or the regie role's overview (what is past
        # its period): either way that person was told of the subject's case.
        if e.object_type in ("alert", "overdue") and e.action is AuditAction.NOTIFY
    ]
    # What left the system about the subject: e-mails and webhook calls of its alerts.
    deliveries = [
        {
            "worker": e.on_behalf_of,
            "channel": e.object_type.removeprefix("alert-"),
            "outcome": e.outcome.value,
            "when": e.occurred_at.isoformat(),
        }
        for e in ordered
        if e.object_type in ("alert-email", "alert-webhook") and e.action is AuditAction.NOTIFY
    ]
    accesses = [
        {
            "who": e.on_behalf_of or e.actor.actor_id,
            "role": e.actor.role,
            "organisation": e.actor.organisation,
            "action": e.action.value,
            "what": e.object_type,
            "when": e.occurred_at.isoformat(),
            "system": e.source_system,
        }
        for e in ordered
        if e.actor.role != "service" or e.action in (AuditAction.READ, AuditAction.SEARCH)
    ]
    return {
        "request_id": str(request_id),
        "generated_at": generated_at.isoformat(),
        "registrations": registrations,
        "matches": list(matches.values()),
        "workers_told": told,
        "deliveries": deliveries,
        "accesses": accesses,
        "log_entries": len(ordered),
    }


# What each column and value of the report is called (marked for the catalogue, translated
# as the page is drawn). A value without a name here is shown as it is.
COLUMNS = {
    "organisation": N_("Organisation"),
    "registered_at": N_("Registered"),
    "match_id": N_("Match"),
    "raised_at": N_("Raised"),
    "ended_at": N_("Ended"),
    "kind": N_("Kind"),
    "worker": N_("Worker"),
    "told_at": N_("Told"),
    "channel": N_("Channel"),
    "outcome": N_("Outcome"),
    "when": N_("When"),
    "who": N_("Who"),
    "role": N_("Role"),
    "action": N_("Action"),
    "what": N_("What"),
    "system": N_("System"),
}
VALUES = {
    "family": N_("family"),
    "person": N_("person"),
    "email": N_("e-mail"),
    "webhook": N_("call to the partner's own system"),
    "success": N_("succeeded"),
    "denied": N_("refused"),
    "failed": N_("failed"),
    "create": N_("created"),
    "read": N_("read"),
    "update": N_("changed"),
    "delete": N_("ended or removed"),
    "search": N_("searched"),
    "export": N_("exported"),
    "assign": N_("assigned"),
    "notify": N_("told"),
    "shred": N_("destroyed"),
    "login": N_("logged in"),
    "reject": N_("refused"),
    "worker": N_("worker"),
    "team_lead": N_("team lead"),
    "regie": N_("the municipality's regie role"),
    "privacy_officer": N_("privacy officer"),
    "partner_admin": N_("partner admin"),
    "service": N_("system"),
    "signal": N_("registration"),
    "registration": N_("registration"),
    "match": N_("match"),
    "case": N_("case"),
    "case-list": N_("case list"),
    "alert": N_("alert"),
    "alert-list": N_("alert list"),
    "match-overview": N_("overview of matches"),
    "inbox-history": N_("inbox history"),
    "inform-task": N_("task: inform the family"),
    "inform-task-list": N_("task list"),
    "earlier-involvement": N_("earlier involvement"),
    "subject": N_("data subject"),
    "subject-report": N_("access report"),
    "subject-notifications": N_("notices to the data subject"),
    "erasure-request": N_("erasure request"),
    "audit-log": N_("audit log"),
    "overdue": N_("past its period, on an overview"),
    "overdue-overview": N_("overview of what is past its period"),
}
MOMENTS = ("registered_at", "raised_at", "ended_at", "told_at", "when")


def report_html(report: dict[str, Any], language: str | None = None) -> str:
    """A printable page of the report, in `language` (by default the active one: Dutch
    unless asked), times in Amsterdam time; every value escaped."""
    with use_language(language or active()) as chosen:
        return _report_page(report, chosen)


def _report_page(report: dict[str, Any], language: str) -> str:
    def cell(key: str, value: Any) -> str:
        if value is None or value == "":
            return "-"
        if key in MOMENTS:
            return moment(datetime.fromisoformat(str(value)), language)
        named = VALUES.get(str(value)) if key not in ("organisation", "worker", "who") else None
        return _(named) if named else str(value)

    def table(title: str, rows: list[dict[str, Any]]) -> str:
        if not rows:
            nothing = _("None.")
            return f"<h2>{html.escape(title)}</h2><p>{html.escape(nothing)}</p>"
        heads = list(rows[0])
        head = "".join(
            f"<th scope=col>{html.escape(_(COLUMNS[h]) if h in COLUMNS else h)}</th>" for h in heads
        )
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell(h, r.get(h)))}</td>" for h in heads) + "</tr>"
            for r in rows
        )
        return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"

    title = _("Access report of a data subject")
    summary = _("Request {request}, made {generated}, from {entries} audit log entries.").format(
        request=report["request_id"],
        generated=moment(datetime.fromisoformat(report["generated_at"]), language),
        entries=int(report["log_entries"]),
    )
    return (
        f"<!doctype html><html lang={language}><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:.3em .6em;text-align:left}</style>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(summary)}</p>"
        + table(_("Organisations that registered a concern"), report["registrations"])
        + table(_("Matches"), report["matches"])
        + table(_("Workers who were told"), report["workers_told"])
        + table(_("E-mails and partner-system calls about it"), report.get("deliveries", []))
        + table(_("Who looked, and when"), report["accesses"])
        + "</html>"
    )
