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
        if e.object_type == "alert" and e.action is AuditAction.NOTIFY
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


def report_html(report: dict[str, Any]) -> str:
    """A printable page of the report; every value escaped."""

    def table(title: str, rows: list[dict[str, Any]]) -> str:
        if not rows:
            return f"<h2>{html.escape(title)}</h2><p>None.</p>"
        heads = list(rows[0])
        head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(str(r.get(h) or '-'))}</td>" for h in heads)
            + "</tr>"
            for r in rows
        )
        return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"

    return (
        "<!doctype html><html lang=nl><meta charset=utf-8>"
        "<title>Inzageverzoek / data subject access report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:.3em .6em;text-align:left}</style>"
        f"<h1>Data subject access report</h1><p>Request {html.escape(report['request_id'])},"
        f" generated {html.escape(report['generated_at'])}, from "
        f"{int(report['log_entries'])} audit log entries.</p>"
        + table("Organisations that registered a concern", report["registrations"])
        + table("Matches", report["matches"])
        + table("Workers who were told", report["workers_told"])
        + table("E-mails and partner-system calls about it", report.get("deliveries", []))
        + table("Who looked, and when", report["accesses"])
        + "</html>"
    )
