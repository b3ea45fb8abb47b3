"""The audit log: one vocabulary of tags, one record shape, one way to write."""

from gatehouse.audit.records import AuditEvent, Tag
from gatehouse.audit.writer import AuditSink, AuditUnavailable, SegmentAuditWriter

__all__ = ["AuditEvent", "AuditSink", "AuditUnavailable", "SegmentAuditWriter", "Tag"]
