"""The names the operator, the Job, its pods and the tests agree on (docs/operator.md)."""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "ANNOTATION_TRACEPARENT",
    "ANNOTATION_TRACE_RECORDED",
    "FINALIZER",
    "GROUP",
    "KUEUE_PRIORITY_LABEL",
    "KUEUE_QUEUE_LABEL",
    "LABEL_INSTRUMENT",
    "LABEL_MANAGED_BY",
    "LABEL_PHASE",
    "LABEL_VISIT",
    "LABEL_VISIT_ID",
    "MANAGED_BY",
    "RAW_MARKER",
    "VERSION",
    "job_name",
    "label_value",
]

GROUP = "shutterline.io"
VERSION = "v1alpha1"
LABEL_VISIT = "shutterline.io/visit"
LABEL_VISIT_ID = "shutterline.io/visit-id"
LABEL_INSTRUMENT = "shutterline.io/instrument"
LABEL_PHASE = "shutterline.io/phase"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "shutterline-operator"
ANNOTATION_TRACEPARENT = "shutterline.io/traceparent"
ANNOTATION_TRACE_RECORDED = "shutterline.io/trace-recorded"
#: Put on Visits by operator versions with kopf change handlers; only ever removed now.
FINALIZER = f"{GROUP}/operator"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
#: Created by the pipeline container once its raw has landed; its readiness probe tests it,
#: so ``ready`` means Processing and running-but-not-ready means WaitingForRaws.
RAW_MARKER = "/scratch/work/raw-arrived"

# A Job's name becomes its pods' `job-name` label value and their name prefix: at most 63
# characters, and the pods add "-<index>-<5 random>".
_JOB_NAME_MAX = 52
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]")


def job_name(visit_name: str) -> str:
    """The one Job of Visit ``visit_name``: the same name, shortened with a hash if long."""
    if len(visit_name) <= _JOB_NAME_MAX:
        return visit_name
    digest = hashlib.sha256(visit_name.encode()).hexdigest()[:8]
    return f"{visit_name[: _JOB_NAME_MAX - 9].rstrip('-.')}-{digest}"


def label_value(text: str) -> str:
    """``text`` as a valid label value (63 characters of ``[A-Za-z0-9._-]``, alphanumeric ends)."""
    value = _LABEL_VALUE.sub("-", text)[:63]
    return value.strip("-_.")
