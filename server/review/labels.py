"""Words for the codes the review pages would otherwise show raw: what a file proves, audit actions and
outcomes, signer roles, measures, timeline marks, record fields, and flag codes in English.

Texts are English message ids translated by the review catalogue (Chinese by default). Flags are the
exception: their Chinese names belong to the rules that raise them (``server.verification.flags``), so
only their English names live here. An unknown code is shown as itself rather than hidden.
"""
from __future__ import annotations

import json
from typing import Any

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from server.verification.flags import FLAG_LABELS

PROVES = {"certificate": _l("Certificate shown"), "scene": _l("Scene"), "signature": _l("Signature"),
          "other": _l("Other"), "recording": _l("Body camera recording")}

SIGNER_ROLES = {"inspector": _l("Inspector"), "representative": _l("Enterprise representative"),
                "witness": _l("Witness")}

COERCIVE_MEASURES = {"seizure": _l("Seizure"), "impoundment": _l("Impoundment"), "demolition": _l("Demolition"),
                     "closure": _l("Closure"), "other": _l("Other measure")}

MARKS = {"certificate": _l("Certificate shown"), "covered": _l("Lens covered"), "gap": _l("Gap"),
         "finding": _l("Finding"), "flag": _l("Flag")}

OUTCOMES = {"success": _l("Done"), "denied": _l("Refused"), "failed": _l("Did not succeed")}

ACTOR_KINDS = {"user": _l("User"), "device": _l("Device"), "system": _l("System (operator)"),
               "anonymous": _l("Not logged in")}

#: Every action the server writes to the audit log (a test reads the sources for any it misses).
ACTIONS = {
    "inspection.view": _l("Viewed the record"),
    "media.view": _l("Looked up the file"),
    "media.stream": _l("Watched or downloaded the file"),
    "media.contact_sheet": _l("Viewed the contact sheet"),
    "review.approve": _l("Approved"),
    "review.return": _l("Returned with comments"),
    "review.legal_signoff": _l("Signed off the legal review"),
    "review.dispatch_approve": _l("Approved the dispatch"),
    "review.dispatch_reject": _l("Rejected the dispatch"),
    "review.login": _l("Logged in to the review app"),
    "review.logout": _l("Logged out of the review app"),
    "review.session_ended": _l("Review session ended"),
    "auth.login": _l("Logged in"),
    "auth.login_failed": _l("Log-in failed"),
    "auth.logout": _l("Logged out"),
    "auth.refresh": _l("Renewed the log-in"),
    "auth.refresh_failed": _l("Renewing the log-in failed"),
    "auth.device_token": _l("Device logged in"),
    "auth.device_token_failed": _l("Device log-in failed"),
    "device.enrolment_code_issued": _l("Issued a tablet enrolment code"),
    "device.enrolled": _l("Tablet enrolled"),
    "device.enrol_failed": _l("Tablet enrolment failed"),
    "device.retired": _l("Retired a device"),
    "device.key_registered": _l("Device signing key registered"),
    "device.key_cleared": _l("Device signing key cleared"),
    "certificate.status_change": _l("Changed a certificate's status"),
    "conflict_of_interest.declare": _l("Declared a conflict of interest"),
    "draw.run": _l("Ran a random draw"),
    "publication.publish": _l("Published a decision's result"),
    "publication.correct": _l("Corrected a published result"),
    "publication.withdraw": _l("Withdrew a published result"),
    "frequency_override.request": _l("Asked to exceed the visit limit"),
    "frequency_override.approve": _l("Allowed exceeding the visit limit"),
    "frequency_override.reject": _l("Refused exceeding the visit limit"),
    "frequency_override.use": _l("Used an allowance to exceed the visit limit"),
    "task.approve": _l("Approved a task"),
    "task.reject": _l("Rejected a task"),
    "task.close": _l("Closed a task"),
    "task.cancel": _l("Cancelled a task"),
    "task.late_registration": _l("Registered a visit late"),
    "decision.created": _l("Recorded an enforcement decision"),
    "decision.updated": _l("Changed a draft enforcement decision"),
    "decision.legal_review": _l("Gave a legal review of a decision"),
    "decision.made": _l("Made an enforcement decision"),
    "decision.served": _l("Served an enforcement decision"),
    "decision_rule.set": _l("Set what makes decisions major"),
    "review_quota.set": _l("Set the sampling quota of footage"),
    "commitment.created": _l("Registered a notification-commitment"),
    "commitment.result": _l("Recorded a commitment check's result"),
    "case_file.download": _l("Downloaded a case file"),
    "legal_hold.place": _l("Placed a legal hold"),
    "legal_hold.lift": _l("Lifted a legal hold"),
    "media.delete": _l("Deleted an evidence file"),
    "evaluation.submitted": _l("The enterprise rated the visit"),
    "evaluation.corrected": _l("The enterprise corrected its rating"),
    "complaint.lodged": _l("The enterprise lodged a complaint"),
    "complaint.closed": _l("Replied to a complaint"),
}

#: The keys of audit details, and of record fields a merge conflict may name.
DETAIL_KEYS = {
    "range": _l("Bytes asked for"), "content_range": _l("Bytes sent"), "status": _l("Status"),
    "comment": _l("Comments"), "reason": _l("Reason"), "decision_id": _l("Decision no."),
    "address": _l("Address"), "role": _l("Role"), "username": _l("User name"), "user_id": _l("User"),
    "device_id": _l("Device"), "task_id": _l("Task"), "enterprise_id": _l("Enterprise"),
    "number": _l("Certificate number"), "version": _l("Version"), "complaint_number": _l("Complaint no."),
}

FIELDS = {"started_at": _l("Started"), "ended_at": _l("Ended"), "place": _l("Place"),
          "representative": _l("Representative"), "conclusion": _l("Conclusion"), "status": _l("Status"),
          "soft_measures": _l("Soft measures"), "coercive_measures": _l("Coercive measures"),
          "result": _l("Result"), "note": _l("Note"), "signer_name": _l("Signer"), "signer_role": _l("Signer role"),
          "proves": _l("Proves"), "file_name": _l("File"), "capture_start": _l("Captured")}

HTTP_STATUSES = {200: _l("whole file sent"), 206: _l("part of the file sent"), 404: _l("file not found"),
                 416: _l("range refused")}

ROLES = {"inspector": _l("Inspector"), "supervisor": _l("Supervisor"), "legal_reviewer": _l("Legal reviewer"),
         "head": _l("Department head"), "admin": _l("Administrator")}

#: The flags' names in the English view (their Chinese names are ``FLAG_LABELS``).
FLAG_ENGLISH = {
    "certificate-missing": "No certificate shown",
    "certificate-unreadable": "Certificate could not be read",
    "certificate-not-own": "Certificate of someone outside the team",
    "certificate-invalid": "Certificate not valid on the day",
    "footage-missing": "Coercive measures without body camera footage",
    "recording-gap": "Body camera recording has gaps",
    "lens-covered": "Lens covered",
    "hash-mismatch": "File hash differs from the one at capture",
    "media-failed": "Evidence file damaged or undecodable",
    "evidence-missing": "Evidence file not uploaded yet",
    "late-sync": "Record synced late",
    "merge-conflict": "Conflicting edits",
    "code-missing": "No valid inspection code",
    "outside-window": "Outside the approved window",
    "late-registration": "Registered late",
    "not-on-team": "Recorded by someone outside the team",
    "clock-offset": "Capturing device's clock far off",
    "clock-jumped-back": "Capturing device's clock was set back",
    "capture-provenance": "Capture signature in doubt",
}

#: A media verification's provenance reasons (server.provenance): their names, beside the server's message.
MEDIA_REASONS = {"unsigned": _l("Not signed at capture"), "bad-signature": _l("Capture signature not valid"),
                 "revoked-key": _l("Signed with a revoked key"), "chain-gap": _l("Gap in the device's captures"),
                 "manifest-mismatch": _l("Capture manifest differs from the file"),
                 "manifest-replayed": _l("Capture manifest used twice")}

_TABLES = {"reason": MEDIA_REASONS, "proves": PROVES, "signer_role": SIGNER_ROLES, "measure": COERCIVE_MEASURES,
           "mark": MARKS, "outcome": OUTCOMES, "actor": ACTOR_KINDS, "action": ACTIONS, "field": FIELDS, "role": ROLES}

DETAILS_SHOWN = 12      # keys of one entry's details
ITEMS_SHOWN = 10        # items of a list among them
TEXT_SHOWN = 200        # characters of one value


def label(table: str, code: Any) -> str:
    """The words for ``code`` in one of the tables above; the code itself when it is not known."""
    if code is None or code == "":
        return "—"
    value = getattr(code, "value", code)
    found = _TABLES[table].get(str(value))
    return str(found) if found is not None else str(value)


def flag_label(code: str) -> str:
    """A flag's name in the page's language."""
    if get_locale() is not None and get_locale().language == "en":
        return FLAG_ENGLISH.get(code, code)
    return FLAG_LABELS.get(code, code)


def _short(text: str) -> str:
    return text if len(text) <= TEXT_SHOWN else text[:TEXT_SHOWN] + "…"


def _value(key: str, value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return str(_l("yes") if value else _l("no"))
    if key == "status" and isinstance(value, int) and value in HTTP_STATUSES:
        return f"{value}（{HTTP_STATUSES[value]}）" if _zh() else f"{value} ({HTTP_STATUSES[value]})"
    if key == "role" and isinstance(value, str):
        return label("role", value)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return _short(value)
    if isinstance(value, list):
        shown = "、".join(_value(key, item) for item in value[:ITEMS_SHOWN])
        rest = len(value) - ITEMS_SHOWN
        return shown + (" " + str(_l("%(count)s more", count=rest)) if rest > 0 else "")
    if isinstance(value, dict):
        return _short("; ".join(f"{_key(k)}: {_value(str(k), v)}" for k, v in list(value.items())[:ITEMS_SHOWN]))
    return _short(json.dumps(value, ensure_ascii=False, default=str))


def value_text(value: Any) -> str:
    """A stored value (text, number, list or object) as words, bounded in length."""
    return _value("", value)


def _key(key: Any) -> str:
    found = DETAIL_KEYS.get(str(key))
    return str(found) if found is not None else str(key)


def _zh() -> bool:
    locale = get_locale()
    return locale is None or locale.language != "en"


def audit_details(details: Any) -> list[tuple[str, str]]:
    """An audit entry's details as (label, words) pairs, a bounded number of them."""
    if not isinstance(details, dict):
        return [] if details in (None, "", [], {}) else [("", _value("", details))]
    pairs = [(_key(key), _value(str(key), value)) for key, value in list(details.items())[:DETAILS_SHOWN]
             if value not in (None, "")]
    if len(details) > DETAILS_SHOWN:
        pairs.append(("", str(_l("%(count)s more", count=len(details) - DETAILS_SHOWN))))
    return pairs
