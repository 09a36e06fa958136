"""CustomResourceDefinitions: admission of the CRD itself, serving its resource, cleanup.

Applying a CRD registers its ``ResourceType`` synchronously (from a store listener, under the
store lock), so the very next request can use it, and sets ``NamesAccepted``/``Established``.
Custom resources are admitted through ``elastrain_sandbox.validation`` (pruning, defaults,
OpenAPI v3 validation and CEL ``x-kubernetes-validations``). Deleting a CRD behaves as on a
cluster: the ``customresourcecleanup.apiextensions.k8s.io`` finalizer holds the CRD while
``CrdCleanup`` deletes every object of the resource (their own finalizers included), then the
resource stops being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections import OrderedDict
from typing import Any

from elastrain_sandbox.apiserver import errors, requestctx
from elastrain_sandbox.apiserver.meta import (
    annotation_size_errors,
    dns_subdomain_errors,
    set_condition,
    timestamp,
)
from elastrain_sandbox.apiserver.resources import ResourceType, ScaleSpec
from elastrain_sandbox.apiserver.store import AdmissionRequest, Store, WatchEvent
from elastrain_sandbox.validation import CompiledSchema, FieldCause, SchemaError, invalid_status

CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
_DEFAULT_COLUMNS = ({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},)


def _crd_invalid(name: str, causes: list[FieldCause]) -> errors.ApiError:
    body = invalid_status("CustomResourceDefinition", "apiextensions.k8s.io", name, causes)
    return errors.ApiError(422, "Invalid", body["message"], body=body)


def _cause(field: str, kind: str, message: str) -> FieldCause:
    return FieldCause(field=field, type=kind, message=message)


_VERSION_SCHEMA = re.compile(r"^spec\.versions\[\d+\]\.schema\.openAPIV3Schema(?=$|[.\[])")


def _schema_paths(versions: list[Any], causes: list[FieldCause]) -> list[FieldCause]:
    """Schema errors under the path kube-apiserver names them by.

    It validates the internal form of a CRD, into which a v1 CRD whose versions all carry the
    same schema (one version, typically) converts with that schema moved to ``spec.validation``:
    its errors then read ``spec.validation.openAPIV3Schema...``, not ``spec.versions[0]...``.
    """
    schemas = [v.get("schema") if isinstance(v, dict) else None for v in versions]
    if not schemas or any(s is None or s != schemas[0] for s in schemas):
        return causes
    return [
        FieldCause(
            _VERSION_SCHEMA.sub("spec.validation.openAPIV3Schema", c.field), c.type, c.message
        )
        for c in causes
    ]


_COMPILED_MAX = 128
_compiled: OrderedDict[str, CompiledSchema] = OrderedDict()
_compiled_lock = threading.Lock()


def compile_version(crd: dict[str, Any], version: str) -> CompiledSchema:
    """``CompiledSchema.from_crd``, memoised by the CRD's versions (a bounded LRU).

    Compiling costs ~0.15 s per version and the same schema was compiled by admission, then
    again by the registrar on every CRD event (status and finalizer writes included); a
    ``CompiledSchema`` is immutable once built, so one compile serves them all. Failures are
    not cached: they raise ``SchemaError`` every time, as they should.
    """
    versions = (crd.get("spec") or {}).get("versions")
    key = json.dumps([version, versions], sort_keys=True, separators=(",", ":"), default=str)
    with _compiled_lock:
        hit = _compiled.get(key)
        if hit is not None:
            _compiled.move_to_end(key)
            return hit
    compiled = CompiledSchema.from_crd(crd, version)
    with _compiled_lock:
        _compiled[key] = compiled
        while len(_compiled) > _COMPILED_MAX:
            _compiled.popitem(last=False)
    return compiled


def report_unknown_fields(unknown: list[str]) -> None:
    """Unknown fields as the API server's decoder reports them for the request's
    ``fieldValidation``: a 400 under Strict, ``Warning`` headers under Warn, nothing under
    Ignore. Custom resources and CRDs (unknown schema keywords) share this."""
    mode = requestctx.field_validation.get()
    if unknown and mode == "Strict":
        raise errors.bad_request(
            "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown)
        )
    if mode == "Warn":
        for f in unknown:
            requestctx.warn(f'unknown field "{f}"')


def resource_type(crd: dict[str, Any]) -> ResourceType:
    """The ``ResourceType`` a (validated) CRD serves."""
    spec = crd["spec"]
    names = spec["names"]
    versions = [v for v in spec["versions"] if v.get("served", True)]
    storage = next((v for v in spec["versions"] if v.get("storage")), spec["versions"][0])
    sub = storage.get("subresources") or {}
    scale = sub.get("scale")
    return ResourceType(
        group=spec["group"],
        versions=tuple(v["name"] for v in versions),
        plural=names["plural"],
        kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        singular=names.get("singular") or names["kind"].lower(),
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        status_subresource="status" in sub,
        scale=(
            ScaleSpec(
                scale["specReplicasPath"],
                scale["statusReplicasPath"],
                scale.get("labelSelectorPath"),
            )
            if scale
            else None
        ),
        printer_columns=tuple(storage.get("additionalPrinterColumns") or _DEFAULT_COLUMNS),
        custom=True,
        storage_version=storage["name"],
        schemas={
            v["name"]: (v.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"}
            for v in versions
        },
    )


class CrdAdmission:
    """Validates and defaults CRDs themselves (the apiextensions registry)."""

    def admit(self, req: AdmissionRequest) -> dict[str, Any]:
        obj, old = req.obj, req.old
        name = obj["metadata"].get("name", "")
        if req.subresource == "status":
            return obj
        spec = obj.get("spec")
        causes: list[FieldCause] = []
        if not isinstance(spec, dict):
            raise _crd_invalid(name, [_cause("spec", "FieldValueRequired", "Required value")])
        names = spec.get("names") or {}
        group = spec.get("group") or ""
        if not group:
            causes.append(_cause("spec.group", "FieldValueRequired", "Required value"))
        for key in ("plural", "kind"):
            if not names.get(key):
                causes.append(_cause(f"spec.names.{key}", "FieldValueRequired", "Required value"))
        if names.get("plural") and group and name != f"{names['plural']}.{group}":
            causes.append(
                _cause(
                    "metadata.name",
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                )
            )
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            causes.append(
                _cause(
                    "spec.scope",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{spec.get("scope")}": supported values: '
                    '"Cluster", "Namespaced"',
                )
            )
        versions = spec.get("versions") or []
        if not versions:
            causes.append(
                _cause(
                    "spec.versions",
                    "FieldValueRequired",
                    "Required value: must have exactly one version marked as storage version",
                )
            )
        elif sum(1 for v in versions if v.get("storage")) != 1:
            causes.append(
                _cause(
                    "spec.versions",
                    "FieldValueInvalid",
                    "Invalid value: must have exactly one version marked as storage version",
                )
            )
        if old is not None and (old.get("spec") or {}).get("scope") != spec.get("scope"):
            causes.append(
                _cause("spec.scope", "FieldValueInvalid", "Invalid value: field is immutable")
            )
        if causes:
            raise _crd_invalid(name, causes)
        unknown: list[str] = []
        for i, v in enumerate(versions):
            try:
                unknown += compile_version(obj, v["name"]).unknown_fields
            except SchemaError as exc:
                raise _crd_invalid(name, _schema_paths(versions, exc.causes)) from exc
            except KeyError:
                raise _crd_invalid(
                    name,
                    [_cause(f"spec.versions[{i}].name", "FieldValueRequired", "Required value")],
                ) from None
        report_unknown_fields(unknown)
        if old is None:
            fins = obj["metadata"].setdefault("finalizers", [])
            if CLEANUP_FINALIZER not in fins:
                fins.append(CLEANUP_FINALIZER)
        status = obj.setdefault("status", {})
        status["acceptedNames"] = {
            k: v
            for k, v in names.items()
            if k in ("plural", "singular", "kind", "listKind", "shortNames", "categories")
        }
        status["acceptedNames"].setdefault("listKind", names["kind"] + "List")
        status["acceptedNames"].setdefault("singular", names["kind"].lower())
        stored = set(status.get("storedVersions") or [])
        stored.add(next(v["name"] for v in versions if v.get("storage")))
        status["storedVersions"] = sorted(stored)
        now = timestamp()
        set_condition(
            status,
            {
                "type": "NamesAccepted",
                "status": "True",
                "lastTransitionTime": now,
                "reason": "NoConflicts",
                "message": "no conflicts found",
            },
        )
        set_condition(
            status,
            {
                "type": "Established",
                "status": "True",
                "lastTransitionTime": now,
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            },
        )
        return obj


class CustomResourceAdmission:
    """Admits objects of one CRD through its compiled schema (per served version)."""

    def __init__(self, crd: dict[str, Any]) -> None:
        self._schemas = {
            v["name"]: compile_version(crd, v["name"]) for v in crd["spec"]["versions"]
        }

    def admit(self, req: AdmissionRequest) -> dict[str, Any]:
        rt, obj, old = req.rt, req.obj, req.old
        version = obj.get("apiVersion", "").rpartition("/")[2] or rt.preferred_version
        schema = self._schemas.get(version) or self._schemas[rt.preferred_version]
        name = obj["metadata"].get("name", "")
        causes = []
        if old is None:
            causes += [
                _cause("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {m}')
                for m in dns_subdomain_errors(name)
            ]
        causes += [
            _cause("metadata.annotations", "FieldValueTooLong", m)
            for m in annotation_size_errors(obj["metadata"].get("annotations"))
        ]
        report_unknown_fields(schema.pruned_fields(obj))
        obj = schema.prepare(obj)
        causes += schema.validate(obj, old)
        if causes:
            body = invalid_status(rt.kind, rt.group, name, causes)
            raise errors.ApiError(422, "Invalid", body["message"], body=body)
        return obj


class CrdRegistrar:
    """Keeps the store's served resources in step with the stored CRDs (a store listener)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.terminating: asyncio.Queue[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.terminating = asyncio.Queue()

    def __call__(self, ev: WatchEvent) -> None:
        if ev.rt.key != CRD_KEY:
            return
        crd = ev.obj
        if ev.type == "DELETED":
            spec = crd["spec"]
            self._store.unregister((spec["group"], spec["names"]["plural"]))
            return
        rt = resource_type(crd)
        if ev.old is not None:
            old_rt = resource_type(ev.old)
            if old_rt.key != rt.key:
                self._store.unregister(old_rt.key)
        self._store.register(rt, CustomResourceAdmission(crd))
        if (
            crd["metadata"].get("deletionTimestamp")
            and self._loop is not None
            and self.terminating is not None
        ):
            self._loop.call_soon_threadsafe(self.terminating.put_nowait, crd["metadata"]["name"])


class CrdCleanup:
    """Deletes a terminating CRD's objects, then releases its cleanup finalizer."""

    def __init__(self, store: Store, registrar: CrdRegistrar) -> None:
        self._store = store
        self._registrar = registrar

    async def run(self) -> None:
        queue = self._registrar.terminating
        assert queue is not None
        while True:
            name = await queue.get()
            await self._cleanup(name)

    async def _cleanup(self, name: str) -> None:
        try:
            crd = self._store.get("customresourcedefinitions.apiextensions.k8s.io", name)
        except errors.ApiError:
            return
        rt = resource_type(crd)
        status = crd.setdefault("status", {})
        set_condition(
            status,
            {
                "type": "Terminating",
                "status": "True",
                "lastTransitionTime": timestamp(),
                "reason": "InstanceDeletionInProgress",
                "message": "CustomResource deletion is in progress",
            },
        )
        self._store.patch(CRD_KEY, name, {"status": status}, subresource="status")
        while True:
            items = self._store.list(rt).items
            for obj in items:
                if not obj["metadata"].get("deletionTimestamp"):
                    with contextlib.suppress(errors.ApiError):
                        self._store.delete(
                            rt, obj["metadata"]["name"], obj["metadata"].get("namespace")
                        )
            if not items:
                break
            await asyncio.sleep(0.2)  # finalizers of the instances are someone else's to remove
        crd = self._store.get(CRD_KEY, name)
        fins = [f for f in crd["metadata"].get("finalizers") or [] if f != CLEANUP_FINALIZER]
        self._store.patch(CRD_KEY, name, {"metadata": {"finalizers": fins or None}})
