"""Which TrainingJob an object belongs to: the one rule that the indexes and the planner share.

An object is a child of job ``J`` when it carries the ``elastrain.dev/job-name: J`` label *and*
its controller owner reference (Kubernetes allows one) is a TrainingJob of our group named
``J``; the reference's uid then tells which incarnation of ``J`` owns it. This is how
Kubeflow's job controller resolves a controller reference, and it is what
``planner.children.owner_reference`` writes on every child. Requiring the label *and* the
reference keeps a stranger's pod that merely copies the label out of the operator's view;
comparing the uid (done by the planner, which knows the job's) keeps a namesake left by an
earlier job of the same name from being counted, deleted or adopted.

Pure and defensive: objects come from the API and may lack any field, so this never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from elastrain.api.constants import LABEL_JOB_NAME
from elastrain.api.kinds import TRAINING_JOB


@dataclass(frozen=True)
class JobOwner:
    """The job named by an object's label and controller reference."""

    name: str
    uid: str | None  # None only for a malformed reference; never equal to a real job's uid


def _mapping(value: object) -> Mapping[str, Any]:
    # Mapping, not dict: kopf hands over its Body views, the planner plain dicts.
    return value if isinstance(value, Mapping) else {}


def _controller_ref(meta: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first owner reference marked ``controller: true`` (metav1.GetControllerOf)."""
    refs = meta.get("ownerReferences")
    for ref in refs if isinstance(refs, list) else []:
        if isinstance(ref, Mapping) and ref.get("controller"):
            return ref
    return None


def owning_job(obj: object) -> JobOwner | None:
    """The TrainingJob that controls ``obj``, or None when it is not a child of any job."""
    meta = _mapping(_mapping(obj).get("metadata"))
    name = _mapping(meta.get("labels")).get(LABEL_JOB_NAME)
    if not isinstance(name, str) or not name:
        return None
    ref = _controller_ref(meta)
    if (
        ref is None
        or ref.get("kind") != TRAINING_JOB.kind
        or not TRAINING_JOB.in_group_of(ref.get("apiVersion"))
        or ref.get("name") != name
    ):
        return None
    uid = ref.get("uid")
    return JobOwner(name, uid if isinstance(uid, str) and uid else None)
