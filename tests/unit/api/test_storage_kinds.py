"""The storage kinds' units: StorageClass, PersistentVolume, PersistentVolumeClaim, VolumeAttachment
defaults, validation (upstream causes, and the lab's refusals naming the field) and printing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nestlab.api import kinds
from nestlab.api import resources as r
from nestlab.api.kinds import persistentvolume, persistentvolumeclaim, storageclass, volumeattachment

Obj = dict[str, Any]


def messages(resource: r.Resource, obj: Obj) -> list[str]:
    unit = kinds.of(resource)
    unit.default(obj)
    return [f"{c.field}: {c.message}" for c in unit.validate(obj)]


def sc(**fields: Any) -> Obj:
    return {"metadata": {"name": "gold"}, "provisioner": storageclass.PROVISIONER, **fields}


def pvc(name: str = "data", **spec: Any) -> Obj:
    body: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, **spec}
    return {"metadata": {"name": name, "namespace": "demo"}, "spec": body}


def pv(name: str = "pv-1", **spec: Any) -> Obj:
    body: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": "1Gi"},
        "csi": {"driver": storageclass.PROVISIONER, "volumeHandle": "vol-1"},
        **spec,
    }
    return {"metadata": {"name": name}, "spec": body}


# -- StorageClass ------------------------------------------------------------------------------------
def test_storage_class_defaults_as_upstream() -> None:
    made = sc()
    assert messages(r.STORAGECLASSES, made) == []
    assert made["reclaimPolicy"] == "Delete"
    assert made["volumeBindingMode"] == "Immediate"


def test_the_lab_default_class_is_valid_and_marked_default() -> None:
    made = storageclass.lab_default()
    assert messages(r.STORAGECLASSES, made) == []
    assert storageclass.is_default(made)
    assert made["volumeBindingMode"] == "WaitForFirstConsumer"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"provisioner": ""}, "provisioner: Required value"),
        ({"reclaimPolicy": "Recycle"}, 'reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"'),
        ({"volumeBindingMode": "Later"}, 'volumeBindingMode: Unsupported value: "Later": supported values: "Immediate", "WaitForFirstConsumer"'),
        ({"provisioner": "bad provisioner"}, 'provisioner: Invalid value: "bad provisioner": name part must consist'),
        ({"mountOptions": ["noatime"]}, "mountOptions: Forbidden: nestlab does not implement mountOptions yet"),
        ({"allowVolumeExpansion": True}, "allowVolumeExpansion: Forbidden: nestlab does not implement volume expansion"),
    ],
)  # fmt: skip
def test_storage_class_refusals(fields: Obj, expected: str) -> None:
    found = messages(r.STORAGECLASSES, sc(**fields))
    assert any(m.startswith(expected) for m in found), found


def test_another_provisioner_may_allow_expansion() -> None:
    assert messages(r.STORAGECLASSES, sc(provisioner="example.com/nas", allowVolumeExpansion=True)) == []


def test_storage_class_update_keeps_what_provisioning_read() -> None:
    old = sc()
    messages(r.STORAGECLASSES, old)
    new = copy.deepcopy(old)
    new.update(provisioner="example.com/other", reclaimPolicy="Retain", parameters={"a": "b"})
    new["volumeBindingMode"] = "WaitForFirstConsumer"
    found = [f"{c.field}: {c.message}" for c in storageclass.validate_update(new, old)]
    assert found == [
        "parameters: Forbidden: updates to parameters are forbidden.",
        "provisioner: Forbidden: updates to provisioner are forbidden.",
        "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.",
        'volumeBindingMode: Invalid value: "WaitForFirstConsumer": field is immutable',
    ]


def test_storage_class_row_marks_the_default() -> None:
    made = storageclass.lab_default()
    made["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    row = storageclass.row(made)
    assert row[:5] == ["datastore (default)", "datastore.nestlab.io", "Delete", "WaitForFirstConsumer", False]
    assert [c.name for c in storageclass.KIND.columns] == [
        "Name", "Provisioner", "ReclaimPolicy", "VolumeBindingMode", "AllowVolumeExpansion", "Age",
    ]  # fmt: skip


def test_the_newest_default_class_wins() -> None:
    older, newer = storageclass.lab_default(), storageclass.lab_default()
    older["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    newer["metadata"].update(name="fast", creationTimestamp="2026-02-01T00:00:00Z")
    plain = sc()
    assert storageclass.default_class([older, newer, plain]) is newer
    assert storageclass.default_class([plain]) is None


# -- PersistentVolumeClaim ---------------------------------------------------------------------------
def test_claim_defaults_filesystem_and_pending() -> None:
    made = pvc()
    assert messages(r.PERSISTENTVOLUMECLAIMS, made) == []
    assert made["spec"]["volumeMode"] == "Filesystem"
    assert made["status"] == {"phase": "Pending"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"accessModes": []}, "spec.accessModes: Required value: at least 1 access mode is required"),
        ({"accessModes": ["Sometimes"]}, 'spec.accessModes: Unsupported value: "Sometimes": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"'),
        ({"accessModes": ["ReadWriteOncePod", "ReadWriteOnce"]}, "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes"),
        ({"accessModes": ["ReadWriteMany"]}, "spec.accessModes: Forbidden: ReadWriteMany is not supported by this lab: the lab datastore attaches a volume to one host at a time"),
        ({"accessModes": ["ReadOnlyMany"]}, "spec.accessModes: Forbidden: ReadOnlyMany is not supported by this lab"),
        ({"resources": {}}, "spec.resources[storage]: Required value"),
        ({"resources": {"requests": {"storage": "0"}}}, 'spec.resources[storage]: Invalid value: "0": must be greater than zero'),
        ({"resources": {"requests": {"storage": "lots"}}}, 'spec.resources[storage]: Invalid value: "lots": quantities must match'),
        ({"storageClassName": "Gold"}, 'spec.storageClassName: Invalid value: "Gold": a lowercase RFC 1123 subdomain'),
        ({"volumeMode": "Block"}, "spec.volumeMode: Forbidden: nestlab does not implement raw block volumes yet"),
        ({"dataSource": {"kind": "VolumeSnapshot", "name": "s"}}, "spec.dataSource: Forbidden: nestlab does not implement dataSource yet"),
        ({"selector": {"matchLabels": {"a": "b"}}}, "spec.selector: Forbidden: nestlab does not implement selector yet"),
    ],
)  # fmt: skip
def test_claim_refusals(spec: Obj, expected: str) -> None:
    found = messages(r.PERSISTENTVOLUMECLAIMS, pvc(**spec))
    assert any(m.startswith(expected) for m in found), found


def test_a_new_claim_is_pending_whatever_the_client_says() -> None:
    made = pvc()
    made["status"] = {"phase": "Bound"}
    persistentvolumeclaim.on_create(made)
    assert made["status"] == {"phase": "Pending"}


def _stored(claim: Obj) -> Obj:
    messages(r.PERSISTENTVOLUMECLAIMS, claim)
    return claim


def test_binding_and_the_default_class_may_be_set_once() -> None:
    old = _stored(pvc())
    new = copy.deepcopy(old)
    new["spec"].update(volumeName="pvc-1", storageClassName="datastore")
    assert persistentvolumeclaim.validate_update(new, old) == []
    again = copy.deepcopy(new)
    again["spec"]["volumeName"] = "pvc-2"
    assert [c.field for c in persistentvolumeclaim.validate_update(again, new)] == ["spec"]


def test_an_unbound_claim_cannot_grow_and_no_claim_shrinks() -> None:
    old = _stored(pvc())
    grown = copy.deepcopy(old)
    grown["spec"]["resources"]["requests"]["storage"] = "2Gi"
    found = [f"{c.field}: {c.message}" for c in persistentvolumeclaim.validate_update(grown, old)]
    assert found == [f"spec: {persistentvolumeclaim.IMMUTABLE_SPEC_MSG}"]
    bound = copy.deepcopy(old)
    bound["spec"]["volumeName"] = "pvc-1"
    bound["status"] = {"phase": "Bound", "capacity": {"storage": "1Gi"}}
    bigger = copy.deepcopy(bound)
    bigger["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert persistentvolumeclaim.validate_update(bigger, bound) == []
    smaller = copy.deepcopy(bound)
    smaller["spec"]["resources"]["requests"]["storage"] = "512Mi"
    found = [f"{c.field}: {c.message}" for c in persistentvolumeclaim.validate_update(smaller, bound)]
    assert found == ["spec.resources.requests.storage: Forbidden: field can not be less than previous value"]
    modes = copy.deepcopy(bound)
    modes["spec"]["accessModes"] = ["ReadWriteOncePod"]
    assert [c.field for c in persistentvolumeclaim.validate_update(modes, bound)] == ["spec"]


def test_claim_rows_show_capacity_and_modes_only_once_bound() -> None:
    made = _stored(pvc(storageClassName="datastore"))
    made["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    row = persistentvolumeclaim.row(made)
    assert row[:7] == ["data", "Pending", "", "", "", "datastore", "<unset>"]
    assert row[8] == "Filesystem"
    made["spec"]["volumeName"] = "pvc-1"
    made["status"] = {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOncePod"]}
    assert persistentvolumeclaim.row(made)[:5] == ["data", "Bound", "pvc-1", "1Gi", "RWOP"]
    made["metadata"]["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    assert persistentvolumeclaim.row(made)[1] == "Terminating"
    names = [c.name for c in persistentvolumeclaim.KIND.columns]
    assert names == [
        "Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass", "VolumeAttributesClass",
        "Age", "VolumeMode",
    ]  # fmt: skip


# -- PersistentVolume --------------------------------------------------------------------------------
def test_volume_defaults_retain_and_pending() -> None:
    made = pv()
    assert messages(r.PERSISTENTVOLUMES, made) == []
    assert made["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert made["status"] == {"phase": "Pending"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"csi": None}, "spec: Required value: must specify a volume type"),
        ({"csi": None, "nfs": {"server": "s", "path": "/"}}, "spec.nfs: Forbidden: nestlab does not implement nfs volumes"),
        ({"hostPath": {"path": "/srv"}}, "spec.hostPath: Forbidden: may not specify more than 1 volume type"),
        ({"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "v"}}, 'spec.csi.driver: Forbidden: the lab has one datastore'),
        ({"csi": {"driver": storageclass.PROVISIONER}}, "spec.csi.volumeHandle: Required value"),
        ({"capacity": {}}, "spec.capacity: Required value"),
        ({"capacity": {"storage": "1Gi", "cpu": "1"}}, 'spec.capacity: Unsupported value: "map[storage: 1Gi, cpu: 1]"'),
        ({"persistentVolumeReclaimPolicy": "Recycle"}, "spec.persistentVolumeReclaimPolicy: Forbidden: Recycle"),
        ({"accessModes": ["ReadWriteMany"]}, "spec.accessModes: Forbidden: ReadWriteMany is not supported by this lab"),
        ({"nodeAffinity": {"required": {}}}, "spec.nodeAffinity: Forbidden: nestlab does not implement nodeAffinity"),
    ],
)  # fmt: skip
def test_volume_refusals(spec: Obj, expected: str) -> None:
    made = pv(**spec)
    made["spec"] = {k: v for k, v in made["spec"].items() if v is not None}
    found = messages(r.PERSISTENTVOLUMES, made)
    assert any(m.startswith(expected) for m in found), found


def test_volume_source_is_immutable_and_rows_show_the_claim() -> None:
    old = pv()
    messages(r.PERSISTENTVOLUMES, old)
    new = copy.deepcopy(old)
    new["spec"]["csi"]["volumeHandle"] = "vol-2"
    found = [c.field for c in persistentvolume.validate_update(new, old)]
    assert found == ["spec.persistentvolumesource"]
    old["spec"].update(claimRef={"namespace": "demo", "name": "data"}, storageClassName="datastore")
    old["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    row = persistentvolume.row(old)
    assert row[:9] == ["pv-1", "1Gi", "RWO", "Retain", "Pending", "demo/data", "datastore", "<unset>", ""]


# -- VolumeAttachment --------------------------------------------------------------------------------
def attachment(**spec: Any) -> Obj:
    body = {
        "attacher": storageclass.PROVISIONER,
        "nodeName": "esx-01",
        "source": {"persistentVolumeName": "pv-1"},
    }
    return {"metadata": {"name": "csi-abc"}, "spec": {**body, **spec}}


def test_attachment_checks_and_immutable_spec() -> None:
    assert messages(r.VOLUMEATTACHMENTS, attachment()) == []
    found = messages(r.VOLUMEATTACHMENTS, attachment(source={}, nodeName=""))
    assert (
        "spec.source: Required value: must specify exactly one of inlineVolumeSpec and persistentVolumeName"
        in found
    )
    assert "spec.nodeName: Required value" in found
    inline = messages(r.VOLUMEATTACHMENTS, attachment(source={"inlineVolumeSpec": {}}))
    assert any(m.startswith("spec.source.inlineVolumeSpec: Forbidden") for m in inline)
    old, new = attachment(), attachment(nodeName="esx-02")
    assert [c.field for c in volumeattachment.validate_update(new, old)] == ["spec"]
    done = attachment()
    done["status"] = {
        "attached": True,
        "attachmentMetadata": {volumeattachment.NBD: "nbd://198.18.0.9:10809/x"},
    }
    done["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    assert messages(r.VOLUMEATTACHMENTS, done) == []
    assert volumeattachment.row(done)[:5] == ["csi-abc", storageclass.PROVISIONER, "pv-1", "esx-01", True]


def test_metadata_changes_leave_an_unbound_claim_valid() -> None:
    old = _stored(pvc())
    new = copy.deepcopy(old)
    new["metadata"]["annotations"] = {persistentvolumeclaim.SELECTED_NODE: "esx-01"}
    assert persistentvolumeclaim.validate_update(new, old) == []


# -- StatefulSet volumeClaimTemplates ---------------------------------------------------------------
def stateful(**spec: Any) -> Obj:
    body: Obj = {
        "serviceName": "db",
        "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [
            {"name": "c", "image": "i", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
        "volumeClaimTemplates": [pvc()],
        **spec,
    }  # fmt: skip
    return {"metadata": {"name": "db", "namespace": "demo"}, "spec": body}


def test_claim_templates_are_defaulted_and_mountable() -> None:
    made = stateful()
    assert messages(r.STATEFULSETS, made) == []
    template = made["spec"]["volumeClaimTemplates"][0]
    assert (template["apiVersion"], template["kind"]) == ("v1", "PersistentVolumeClaim")
    assert template["spec"]["volumeMode"] == "Filesystem"
    assert made["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }


def test_claim_templates_are_checked_as_claims_and_delete_policies_refused() -> None:
    shared = pvc()
    shared["spec"]["accessModes"] = ["ReadWriteMany"]
    found = messages(r.STATEFULSETS, stateful(volumeClaimTemplates=[shared, pvc()]))
    assert any(
        m.startswith("spec.volumeClaimTemplates[0].spec.accessModes: Forbidden: ReadWriteMany") for m in found
    )
    assert 'spec.volumeClaimTemplates[1].metadata.name: Duplicate value: "data"' in found
    policy = {"whenDeleted": "Delete", "whenScaled": "Sometimes"}
    found = messages(r.STATEFULSETS, stateful(persistentVolumeClaimRetentionPolicy=policy))
    assert any(
        m.startswith("spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Forbidden: nestlab does not")
        for m in found
    )
    assert (
        'spec.persistentVolumeClaimRetentionPolicy.whenScaled: Unsupported value: "Sometimes": supported values: '
        '"Retain", "Delete"'
    ) in found
    unmounted = stateful(volumeClaimTemplates=[])
    assert messages(r.STATEFULSETS, unmounted) == [
        'spec.template.spec.containers[0].volumeMounts[0].name: Not found: "data"'
    ]
