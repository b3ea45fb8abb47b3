"""Audit records and the one vocabulary of `plane:subject:action` tags."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from gatehouse.db.engine import utcnow


class Tag(enum.StrEnum):
    GATEWAY_CONNECT_ALLOWED = "gateway:connect:allowed"
    GATEWAY_CONNECT_DENIED = "gateway:connect:denied"
    GATEWAY_REQUEST_ALLOWED = "gateway:request:allowed"
    GATEWAY_REQUEST_DENIED = "gateway:request:denied"
    GATEWAY_TUNNEL_CLOSED = "gateway:tunnel:closed"
    GATEWAY_TUNNEL_CUT = "gateway:tunnel:cut"
    GATEWAY_RESPONSE_DONE = "gateway:response:done"
    GATEWAY_ERROR = "gateway:error:refused"
    GATEWAY_CONTROL_LOST = "gateway:control:lost"
    GATEWAY_CONTROL_RESTORED = "gateway:control:restored"
    CONTROL_SUSPENDED = "control:inmate:suspended"
    CONTROL_RESUMED = "control:inmate:resumed"
    CONTROL_LOCKDOWN = "control:lockdown:started"
    CONTROL_LOCKDOWN_LIFTED = "control:lockdown:lifted"
    CONTROL_TERMINAL_OFF = "control:terminal:off"
    CONTROL_TERMINAL_ON = "control:terminal:on"
    POLICY_CHANGED = "policy:snapshot:changed"
    POLICY_REJECTED = "policy:snapshot:rejected"
    PORTAL_REQUEST = "portal:request:served"
    PORTAL_LOGIN_SUCCESS = "portal:login:success"
    PORTAL_LOGIN_FAILURE = "portal:login:failure"
    PORTAL_LOGIN_LOCKED = "portal:login:locked"
    PORTAL_LOGOUT = "portal:logout:done"
    STAFF_LOGIN_PASSWORD = "staff:login:password-ok"
    STAFF_LOGIN_SUCCESS = "staff:login:success"
    STAFF_LOGIN_FAILURE = "staff:login:failure"
    STAFF_LOGIN_THROTTLED = "staff:login:throttled"
    STAFF_TOTP_ENROLLED = "staff:totp:enrolled"
    STAFF_TOTP_FAILURE = "staff:totp:failure"
    STAFF_TOTP_REPLAYED = "staff:totp:replayed"
    STAFF_RECOVERY_USED = "staff:recovery-code:used"
    STAFF_RECOVERY_REGENERATED = "staff:recovery-code:regenerated"
    STAFF_PASSWORD_CHANGED = "staff:password:changed"
    STAFF_LOGOUT = "staff:logout:done"
    ADMIN_STAFF_ADDED = "admin:staff:added"
    ADMIN_STAFF_CHANGED = "admin:staff:changed"
    ADMIN_STAFF_2FA_RESET = "admin:staff:2fa-reset"
    ADMIN_STAFF_UNLOCKED = "admin:staff:unlocked"
    ADMIN_FACILITY_CHANGED = "admin:facility:changed"
    ADMIN_UNIT_ADDED = "admin:unit:added"
    ADMIN_UNIT_REMOVED = "admin:unit:removed"
    ADMIN_TERMINAL_ADDED = "admin:terminal:added"
    ADMIN_TERMINAL_REMOVED = "admin:terminal:removed"
    ADMIN_INMATE_ADDED = "admin:inmate:added"
    ADMIN_INMATE_IMPORTED = "admin:inmate:imported"
    ADMIN_INMATE_PIN_SET = "admin:inmate:pin-set"
    ADMIN_INMATE_CHANGED = "admin:inmate:changed"
    AUDIT_EXPORTED = "audit:records:exported"
    AUDIT_VERIFIED = "audit:chain:verified"
    AUDIT_PRUNED = "audit:records:pruned"
    AUDIT_CHECKPOINTS_EXPORTED = "audit:checkpoints:exported"
    AUDIT_VIEWED = "audit:records:viewed"
    AUDIT_ALERT_RAISED = "audit:alert:raised"
    AUDIT_REPAIRED = "audit:segment:repaired"
    """A torn last line (a write a crash interrupted, never acknowledged) was cut off a segment file at start."""
    LEARNING_COURSE_IMPORTED = "learning:course:imported"
    LEARNING_COURSE_EXPORTED = "learning:course:exported"
    LEARNING_COURSE_PUBLISHED = "learning:course:published"
    LEARNING_COURSE_EDITED = "learning:course:edited"
    """A draft version made, or a file of one changed, in the portal."""
    LEARNING_ENROLMENT_ADDED = "learning:enrolment:added"
    LEARNING_ENROLMENT_WITHDRAWN = "learning:enrolment:withdrawn"
    LEARNING_ENROLMENT_REQUESTED = "learning:enrolment:requested"
    """An inmate asked to join a course from the catalogue."""
    LEARNING_ENROLMENT_REFUSED = "learning:enrolment:refused"
    LEARNING_ELIGIBILITY_CHANGED = "learning:eligibility:changed"
    """Who may take a course: its groups, or a named inmate excluded (with the reason) or no longer."""
    LEARNING_ATTEMPT_STARTED = "learning:attempt:started"
    LEARNING_ATTEMPT_FINISHED = "learning:attempt:finished"
    LEARNING_COURSE_COMPLETED = "learning:course:completed"
    LEARNING_GRANT_OPENED = "learning:grant:opened"
    """The sites a course needs opened to one inmate (enrolment)."""
    LEARNING_GRANT_CLOSED = "learning:grant:closed"
    """...and closed again (completion, withdrawal, end date, transfer)."""
    LEARNING_CERTIFICATE_ISSUED = "learning:certificate:issued"
    LEARNING_CERTIFICATE_REVOKED = "learning:certificate:revoked"
    LEARNING_RECORD_EXPORTED = "learning:record:exported"
    LEARNING_RECORD_IMPORTED = "learning:record:imported"
    CURATION_REQUEST_ASKED = "curation:request:asked"
    """An inmate asked for a site (or asked again for the same one: the same request)."""
    CURATION_REQUEST_WITHDRAWN = "curation:request:withdrawn"
    CURATION_REQUEST_REFUSED = "curation:request:refused"
    CURATION_PREVIEW_FETCHED = "curation:preview:fetched"
    """The server fetched a requested page for a reviewer, through the gateway's upstream checks."""
    CURATION_PROPOSAL_MADE = "curation:proposal:made"
    CURATION_PROPOSAL_APPROVED = "curation:proposal:approved"
    CURATION_PROPOSAL_REFUSED = "curation:proposal:refused"
    CURATION_PROPOSAL_RETURNED = "curation:proposal:returned"
    """Sent back to the proposer to change."""
    CURATION_PROPOSAL_DENIED = "curation:proposal:denied"
    """An approval the server refused: one's own proposal, or without the role it needs."""
    CURATION_RULE_ADDED = "curation:rule:added"
    CURATION_RULE_CHANGED = "curation:rule:changed"
    CURATION_RULE_REMOVED = "curation:rule:removed"
    """Each with the rule before and after, as a policy file would write it."""
    CURATION_PAGE_FLAGGED = "curation:page:flagged"
    """An approved rule's page grew a form posting elsewhere, a login, an upload or a mail function."""
    CURATION_PAGE_CLEARED = "curation:page:cleared"
    LIBRARY_ADDED = "library:library:added"
    """A ZIM file put on the shelf (`gatehouse library add`)."""
    LIBRARY_ARTICLE_OPENED = "library:article:opened"
    LIBRARY_SEARCH = "library:search"
    LIBRARY_ARTICLE_HIDDEN = "library:article:hidden"
    """An article or a path prefix kept out of reading and search by staff; `shown` when no longer."""
    LIBRARY_ARTICLE_SHOWN = "library:article:shown"
    LIBRARY_GROUPS_CHANGED = "library:groups:changed"
    RESOURCES_IMPORTED = "resources:directory:imported"
    """An HSDS feed read into the directory (how many entries were added, changed, left as they were)."""
    RESOURCES_EXPORTED = "resources:directory:exported"
    RESOURCES_SERVICE_CHANGED = "resources:service:changed"
    """An entry edited by staff, with the fields before and after."""
    RESOURCES_SERVICE_CHECKED = "resources:service:checked"
    """Staff confirmed an entry is still true (its `assured_date` is today)."""
    RESOURCES_WEBSITE_PROPOSED = "resources:website:proposed"
    """Opening (or closing) an entry's website was proposed; the rule itself comes with four eyes."""
    RESOURCES_LINKS_CHECKED = "resources:links:checked"
    RESOURCES_SERVICE_VIEWED = "resources:service:viewed"
    RESOURCES_JOB_POSTED = "resources:job:posted"
    RESOURCES_JOB_CHANGED = "resources:job:changed"
    RESOURCES_JOB_WITHDRAWN = "resources:job:withdrawn"
    RESOURCES_PLAN_VIEWED = "resources:plan:viewed"
    """A member of staff opened an inmate's release plan (the inmate sees who looked)."""
    RESOURCES_PLAN_PRINTED = "resources:plan:printed"
    RESOURCES_PLAN_CHANGED = "resources:plan:changed"
    """The inmate changed their plan: saved or removed an entry or offer, ticked a step, the release date or region,
    their notes (only how long they are; what they wrote stays theirs)."""
    RESOURCES_SUPPORTER_ADDED = "resources:supporter:added"
    """A member of staff now supports an inmate's release, and so may read their plan; `removed` when no more."""
    RESOURCES_SUPPORTER_REMOVED = "resources:supporter:removed"
    VISITS_VISITOR_REGISTERED = "visits:visitor:registered"
    """Someone registered on the public listener (or registered again: the owner of the address is told)."""
    VISITS_VISITOR_CONFIRMED = "visits:visitor:confirmed"
    VISITS_VISITOR_ADDED = "visits:visitor:added"
    VISITS_VISITOR_VERIFIED = "visits:visitor:verified"
    """A member of staff saw the visitor's identity document: who, which document, lawyer or not."""
    VISITS_VISITOR_REFUSED = "visits:visitor:refused"
    VISITS_VISITOR_SUSPENDED = "visits:visitor:suspended"
    VISITS_VISITOR_LOGIN_SUCCESS = "visits:visitor:login-success"
    VISITS_VISITOR_LOGIN_FAILURE = "visits:visitor:login-failure"
    """A wrong password, or a wrong or replayed code, for a visitor's address (known or not)."""
    VISITS_VISITOR_LOGIN_THROTTLED = "visits:visitor:login-throttled"
    VISITS_VISITOR_TOTP_ADDED = "visits:visitor:totp-added"
    VISITS_VISITOR_TOTP_REPLAYED = "visits:visitor:totp-replayed"
    VISITS_VISITOR_PASSWORD_CHANGED = "visits:visitor:password-changed"
    VISITS_VISITOR_LOGOUT = "visits:visitor:logout"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    tag: Tag
    plane: str
    actor: str = ""
    terminal: str = ""
    client_addr: str = ""
    method: str = ""
    host: str = ""
    path: str = ""
    decision: str = ""
    reason: str = ""
    status: int | None = None
    bytes_up: int | None = None
    bytes_down: int | None = None
    duration_ms: int | None = None
    at: datetime = field(default_factory=utcnow)

    def as_row(self) -> dict[str, Any]:
        """The fields as a plain dict; every field is a flat value, so no deep copy (`asdict`) is needed."""
        row = {name: getattr(self, name) for name in _EVENT_FIELDS}
        row["tag"] = str(self.tag)
        return row


_EVENT_FIELDS = tuple(f.name for f in fields(AuditEvent))


def body_of(event: AuditEvent, privileged: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The record's body as the chain hashes it and the segment line holds it."""
    row = event.as_row()
    row["at"] = event.at.isoformat(timespec="microseconds")
    if row["path"] and row["host"] in privileged:
        row["path"] = ""  # privileged traffic: who and where, never what
    return row
