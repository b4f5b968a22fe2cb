"""Protobuf bodies recorded from kubectl 1.33's typed workload commands, decoded as upstream's JSON.

Each fixture is the body ``kubectl.1.33 -v=10 <command>`` sent to a real nestlab-apiserver (the
command is above it); each expected object is what ``<command> --dry-run=client -o json`` printed
for the same command, without ``creationTimestamp: null`` and ``status``, which the server owns.
``create job --from=cronjob/NAME`` copies the CronJob's whole stored template, so the "rich"
fixtures carry nearly every pod-template field (probes, volumes, affinity, security contexts...).
kubectl 1.33's ``drain`` posts its Eviction as JSON; the Eviction bodies here are encoded the way
client-go encodes protobuf (built with the small encoder below), for Go clients that ask for it.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from nestlab.api import protobuf
from nestlab.api.status import ApiError

# kubectl.1.33 create deployment web --image=depot:5000/nestlab/web:1 --replicas=0 --port=8080 -n demo -- sh -c echo
DEPLOYMENT = "azhzAAoVCgdhcHBzL3YxEgpEZXBsb3ltZW50Et0BCiMKA3dlYhIAGgRkZW1vIgAqADIAOABCAFoKCgNhcHASA3dlYhKnAQgAEgwKCgoDYXBwEgN3ZWIajAEKHAoAEgAaACIAKgAyADgAQgBaCgoDYXBwEgN3ZWISbBJOCgN3ZWISGGRlcG90OjUwMDAvbmVzdGxhYi93ZWI6MRoCc2gaAi1jGgRlY2hvKgAyCwoAEAAYkD8iACoAQgBqAHIAgAEAiAEAkAEAogEAGgAyAEIASgBSAFgAYABoAIIBAIoBAJoBAMIBACICCgAoADgAGgwIABAAGAAgACgAOAAaACIA"
# kubectl.1.33 create deployment two --image=a --image=b -n demo
DEPLOYMENT_TWO_IMAGES = "azhzAAoVCgdhcHBzL3YxEgpEZXBsb3ltZW50EsQBCiMKA3R3bxIAGgRkZW1vIgAqADIAOABCAFoKCgNhcHASA3R3bxKOAQgBEgwKCgoDYXBwEgN0d28adAocCgASABoAIgAqADIAOABCAFoKCgNhcHASA3R3bxJUEhoKAWESAWEqAEIAagByAIABAIgBAJABAKIBABIaCgFiEgFiKgBCAGoAcgCAAQCIAQCQAQCiAQAaADIAQgBKAFIAWABgAGgAggEAigEAmgEAwgEAIgIKACgAOAAaDAgAEAAYACAAKAA4ABoAIgA="
# kubectl.1.33 create cronjob tick --image=busybox --schedule="*/5 * * * *" --restart=OnFailure -n demo -- echo hi
CRONJOB = "azhzAAoTCghiYXRjaC92MRIHQ3JvbkpvYhKzAQoYCgR0aWNrEgAaBGRlbW8iACoAMgA4AEIAEpQBCgsqLzUgKiAqICogKhoAKoIBChQKBHRpY2sSABoAIgAqADIAOABCABJqMmgKEAoAEgAaACIAKgAyADgAQgASVBItCgR0aWNrEgdidXN5Ym94GgRlY2hvGgJoaSoAQgBqAHIAgAEAiAEAkAEAogEAGglPbkZhaWx1cmUyAEIASgBSAFgAYABoAIIBAIoBAJoBAMIBABoAGgAiAA=="
# kubectl.1.33 create job once --image=busybox -n demo -- echo hi
JOB = "azhzAAoPCghiYXRjaC92MRIDSm9iEowBChgKBG9uY2USABoEZGVtbyIAKgAyADgAQgASZjJkChAKABIAGgAiACoAMgA4AEIAElASLQoEb25jZRIHYnVzeWJveBoEZWNobxoCaGkqAEIAagByAIABAIgBAJABAKIBABoFTmV2ZXIyAEIASgBSAFgAYABoAIIBAIoBAJoBAMIBABoIIAAoADAAOgAaACIA"
# kubectl.1.33 create job manual --from=cronjob/cj -n w (cj made by the create cronjob above)
JOB_FROM_CRONJOB = "azhzAAoPCghiYXRjaC92MRIDSm9iEtgCCoUBCgZtYW51YWwSABoBdyIAKgAyADgAQgBiKwohY3JvbmpvYi5rdWJlcm5ldGVzLmlvL2luc3RhbnRpYXRlEgZtYW51YWxqPwoHQ3JvbkpvYhoCY2oiJDU3MjRiZjIzLTZhZmEtNDgyMS1iMmIxLTM3MjJkMjk0ZjFlNCoIYmF0Y2gvdjEwARLDAQgBEAEyrAEKEAoAEgAaACIAKgAyADgAQgASlwESSQoCY2oSB2J1c3lib3gaBGVjaG8aAmhpKgBCAGoUL2Rldi90ZXJtaW5hdGlvbi1sb2dyBkFsd2F5c4ABAIgBAJABAKIBBEZpbGUaCU9uRmFpbHVyZSAeMgxDbHVzdGVyRmlyc3RCAEoAUgBYAGAAaAByAIIBAIoBAJoBEWRlZmF1bHQtc2NoZWR1bGVywgEAyAEA8AEBOAZKCk5vbkluZGV4ZWRQABoIIAAoADAAOgAaACIA"
# kubectl.1.33 create job rich2-2 --from=cronjob/rich2 -n w (newer fields: hostUsers, schedulingGates,
# appArmorProfile, csi/ephemeral/image volumes, recursiveReadOnly, matchLabelKeys, lifecycle handlers)
JOB_FROM_NEWER_FIELDS = "azhzAAoPCghiYXRjaC92MRIDSm9iErYFCokBCgdyaWNoMi0yEgAaAXciACoAMgA4AEIAYisKIWNyb25qb2Iua3ViZXJuZXRlcy5pby9pbnN0YW50aWF0ZRIGbWFudWFsakIKB0Nyb25Kb2IaBXJpY2gyIiQzZGUyYmYwNC1lOGMwLTQwZjktOTcxMi04ZGVkNDI0NWUyOTQqCGJhdGNoL3YxMAESnQQIARABMoYEChAKABIAGgAiACoAMgA4AEIAEvEDCiwKAWMSJ+IBJAoNZC5leGFtcGxlLmNvbRABGgRleHQ0IgYKAWESAWIqAwoBcwpRCgFlEkzqAUkKRwoYCgASABoAIgAqADIAOABCAFoGCgFhEgFiEisKDVJlYWRXcml0ZU9uY2USEhIQCgdzdG9yYWdlEgUKAzFHaRoAKgRmYXN0CikKAWkSJPIBIQoRZGVwb3Q6NTAwMC9kYXRhOjESDElmTm90UHJlc2VudBKUAQoBYxIHYnVzeWJveCoAQgBKFwoBYxAAGgIvYyIAMgA6CERpc2FibGVkYiUKDBoKCgYIABBRGgASABIVEhMKBS9zdG9wEgYIABBQGgAaACIAahQvZGV2L3Rlcm1pbmF0aW9uLWxvZ3IGQWx3YXlzehRiEgoJTG9jYWxob3N0EgVrOHMteIABAIgBAJABAKIBBEZpbGUaCU9uRmFpbHVyZSAeMgxDbHVzdGVyRmlyc3RCAEoAUgBYAGAAaAByJ1oQCg5SdW50aW1lRGVmYXVsdGIGU3RyaWN0agtNb3VudE9wdGlvboIBAIoBAJIBIBIeEhwIARIYCggKBgoBYRIBYhoEem9uZSIAKgF4MgF5mgERZGVmYXVsdC1zY2hlZHVsZXLCAQDIAQDwAQGoAgCyAhIKEGV4YW1wbGUuY29tL2dhdGU4BkoKTm9uSW5kZXhlZFAAGgggACgAMAA6ABoAIgA="
# kubectl.1.33 create poddisruptionbudget web --selector=app=web --min-available=50% -n demo
PDB_MIN_AVAILABLE = "azhzAAogCglwb2xpY3kvdjESE1BvZERpc3J1cHRpb25CdWRnZXQSQAoXCgN3ZWISABoEZGVtbyIAKgAyADgAQgASGQoJCAEQABoDNTAlEgwKCgoDYXBwEgN3ZWIaCggAGAAgACgAMAAaACIA"
# kubectl.1.33 create pdb db --selector=app=db,tier=data --max-unavailable=0 -n demo
PDB_MAX_UNAVAILABLE = "azhzAAogCglwb2xpY3kvdjESE1BvZERpc3J1cHRpb25CdWRnZXQSSQoWCgJkYhIAGgRkZW1vIgAqADIAOABCABIjEhkKCQoDYXBwEgJkYgoMCgR0aWVyEgRkYXRhGgYIABAAGgAaCggAGAAgACgAMAAaACIA"
# kubectl.1.33 create job rich-2 --from=cronjob/rich -n w, the CronJob holding a pod template with
# init containers, env valueFrom, envFrom, ports, resources, mounts, eight volume kinds, the three
# probes, lifecycle, security contexts, tolerations (one with tolerationSeconds -5), affinity, spread
JOB_FROM_RICH_CRONJOB = (
    "azhzAAoPCghiYXRjaC92MRIDSm9iEpYRCrABCgZyaWNoLTISABoBdyIAKgAyADgAQgBaCwoDYXBwEgRyaWNoWg0KBHRpZXISBWJh"
    "dGNoYisKIWNyb25qb2Iua3ViZXJuZXRlcy5pby9pbnN0YW50aWF0ZRIGbWFudWFsYgsKBG5vdGUSA2EgYmpBCgdDcm9uSm9iGgRy"
    "aWNoIiQxNDg0Y2E5YS0zYzlkLTRmY2QtOWM5NC1kYjNhY2ZhOTk4MTMqCGJhdGNoL3YxMAES1g8IAhAFGNgEMvkOCiUKABIAGgAi"
    "ACoAMgA4AEIAWgsKA2FwcBIEcmljaGIGCgF4EgF5Es8OCh0KB3NjcmF0Y2gSEhIQCgZNZW1vcnkSBgoENjRNaQokCgNjZmcSHZoB"
    "GgoECgJjbRINCgFhEgVhLnR4dBiAAhikAyABChEKA3NlYxIKMggKAXMYgAMgAAofCgRob3N0EhcKFQoIL3Zhci9sb2cSCURpcmVj"
    "dG9yeQoSCgRkYXRhEgpSCAoEZGF0YRABCksKBGluZm8SQ4IBQAodCgZsYWJlbHMSEwoAEg9tZXRhZGF0YS5sYWJlbHMKHwoDY3B1"
    "GhgKBG1haW4SCmxpbWl0cy5jcHUaBAoCMW0KXwoEcHJvahJX0gFUChMiEQoFdmF1bHQQkBwaBXRva2VuChEaDwoFCgNjbTISBgoB"
    "axIBcAoICgYKBAoCczIKHRIbChkKBG5hbWUSEQoAEg1tZXRhZGF0YS5uYW1lEKACCiEKBm5mc3ZvbBIXOhUKCDEwLjAuMC4yEgcv"
    "ZXhwb3J0GAES/gUKBG1haW4SGGRlcG90OjUwMDAvbmVzdGxhYi93ZWI6MRoIL2Jpbi9hcHAiBi0tcG9ydCIEODA4MCoFL3dvcmsy"
    "EgoEaHR0cBAAGJA/IgNUQ1AqADIVCgAQ6SkYNSIDVURQKgcwLjAuMC4wOgYKAUESATE6CQoFRU1QVFkSADoeCgNQT0QSABoVChMK"
    "AnYxEg1tZXRhZGF0YS5uYW1lOiMKA01FTRIAGhoSGAoAEg1saW1pdHMubWVtb3J5GgUKAzFNaToVCgJDTRIAGg0aCwoECgJjbRIB"
    "axgBOhoKA1NFQxIAGhEiDwoDCgFzEghwYXNzd29yZEJ5CgoKA2NwdRIDCgEyChoKEWVwaGVtZXJhbC1zdG9yYWdlEgUKAzFHaQoR"
    "CgZtZW1vcnkSBwoFNTEyTWkSDQoDY3B1EgYKBDUwMG0SGgoRZXBoZW1lcmFsLXN0b3JhZ2USBQoDMUdpEhEKBm1lbW9yeRIHCgUx"
    "MjhNaUoVCgdzY3JhdGNoEAAaBC90bXAiADIAShoKA2NmZxABGggvZXRjL2NmZyIFYS50eHQyAEokCgRob3N0EAAaBS9ob3N0IgAq"
    "D0hvc3RUb0NvbnRhaW5lcjIAUjQKKBImCggvaGVhbHRoehIKCAEQABoEaHR0cBoAIgRIVFRQKgYKAVgSATEQBRgAIAooADADWhkK"
    "DRoLCgcIABCQPxoAEgAQABgCIAAoATAAYh4KFgoUCgJzaAoCLWMKCmVjaG8gc3RhcnQSBCICCANqFC9kZXYvdGVybWluYXRpb24t"
    "bG9ncgxJZk5vdFByZXNlbnR6PgoQCglORVRfQURNSU4SA0FMTBAAGg0KABIAGgAiBXMwOmMxIAAwATgAWhMKCUxvY2FsaG9zdBIG"
    "cC5qc29ugAEBiAEAkAEBmgEOCgRDRkdfEgYKBAoCY22aAQsKABoHCgMKAXMQAKIBFUZhbGxiYWNrVG9Mb2dzT25FcnJvcrIBHQoP"
    "Cg0KA2NhdAoGL3JlYWR5EAAYACAAKAAwHjgFEnEKBHNpZGUSB2J1c3lib3gqAEIAWhkKDSILCIJHEgZoZWFsdGgQABgAIAAoADAA"
    "ahQvZGV2L3Rlcm1pbmF0aW9uLWxvZ3IGQWx3YXlzgAEAiAEAkAEAogEERmlsZboBEgoDY3B1EgtOb3RSZXF1aXJlZBoFTmV2ZXIg"
    "ACiEBzIETm9uZToLCgRkaXNrEgNzc2RCBnJ1bm5lckoAUgBYAGAAaAByXxDoBxgAIKAfIIgnKNAPMLgXOioKHG5ldC5pcHY0Lmlw"
    "X2xvY2FsX3BvcnRfcmFuZ2USCjEwMjQgNjU1MzVKDk9uUm9vdE1pc21hdGNoUhAKDlJ1bnRpbWVEZWZhdWx0egkKB3JlZ2NyZWSC"
    "AQJoMYoBA3N1YpIBegorChQKEgoQCgR6b25lEgJJbhoBYRoBYhITCAoSDwoNCgNncHUSBkV4aXN0cxIYChYKCwoJCgNhcHASAmRi"
    "EgF3GgR6b25lGjESLwhkEisKERIPCgNhcHASAkluGgRyaWNoGhZrdWJlcm5ldGVzLmlvL2hvc3RuYW1lmgERZGVmYXVsdC1zY2hl"
    "ZHVsZXKiAU4KBGluaXQSB2J1c3lib3gaAnNoGgItYxoJZWNobyBpbml0KgBCDxINCgNjcHUSBgoEMTAwbWoAcgCAAQCIAQCQAQCi"
    "AQDCAQZBbHdheXOoAQCyASMKAWsSBUVxdWFsGgF2IglOb0V4ZWN1dGUo+///////////AbIBDgoAEgZFeGlzdHMaACIAugEQCggx"
    "MC4wLjAuMRIBYRIBYsIBAMgBANIBJwoHMS4xLjEuMRIHYS5sb2NhbBoKCgVuZG90cxIBMhoHCgVlZG5zMNgBAeIBEwoRZXhhbXBs"
    "ZS5jb20vcmVhZHnwAQCKAk0IARIWa3ViZXJuZXRlcy5pby9ob3N0bmFtZRoNRG9Ob3RTY2hlZHVsZSINCgsKA2FwcBIEcmljaCgC"
    "QhFwb2QtdGVtcGxhdGUtaGFzaKICBwoFbGludXg4AEAASgpOb25JbmRleGVkUABaPwoZCgdGYWlsSm9iEg4KBG1haW4SAkluGCoY"
    "KwoiCgZJZ25vcmUaGAoQRGlzcnVwdGlvblRhcmdldBIEVHJ1ZRoIIAAoADAAOgAaACIA"
)


def _decode(fixture: str) -> dict[str, Any]:
    return protobuf.decode(base64.b64decode(fixture))


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        pytest.param(
            DEPLOYMENT,
            {
                "kind": "Deployment",
                "apiVersion": "apps/v1",
                "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "web",
                                    "image": "depot:5000/nestlab/web:1",
                                    "command": ["sh", "-c", "echo"],
                                    "ports": [{"containerPort": 8080}],
                                    "resources": {},
                                }
                            ]
                        },
                    },
                    "strategy": {},
                },
            },
            id="deployment",
        ),
        pytest.param(
            DEPLOYMENT_TWO_IMAGES,
            {
                "kind": "Deployment",
                "apiVersion": "apps/v1",
                "metadata": {"name": "two", "namespace": "demo", "labels": {"app": "two"}},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "two"}},
                    "template": {
                        "metadata": {"labels": {"app": "two"}},
                        "spec": {
                            "containers": [
                                {"name": "a", "image": "a", "resources": {}},
                                {"name": "b", "image": "b", "resources": {}},
                            ]
                        },
                    },
                    "strategy": {},
                },
            },
            id="deployment_two_images",
        ),
        pytest.param(
            CRONJOB,
            {
                "kind": "CronJob",
                "apiVersion": "batch/v1",
                "metadata": {"name": "tick", "namespace": "demo"},
                "spec": {
                    "schedule": "*/5 * * * *",
                    "jobTemplate": {
                        "metadata": {"name": "tick"},
                        "spec": {
                            "template": {
                                "metadata": {},
                                "spec": {
                                    "containers": [
                                        {
                                            "name": "tick",
                                            "image": "busybox",
                                            "command": ["echo", "hi"],
                                            "resources": {},
                                        }
                                    ],
                                    "restartPolicy": "OnFailure",
                                },
                            }
                        },
                    },
                },
            },
            id="cronjob",
        ),
        pytest.param(
            JOB,
            {
                "kind": "Job",
                "apiVersion": "batch/v1",
                "metadata": {"name": "once", "namespace": "demo"},
                "spec": {
                    "template": {
                        "metadata": {},
                        "spec": {
                            "containers": [
                                {
                                    "name": "once",
                                    "image": "busybox",
                                    "command": ["echo", "hi"],
                                    "resources": {},
                                }
                            ],
                            "restartPolicy": "Never",
                        },
                    }
                },
            },
            id="job",
        ),
        pytest.param(
            JOB_FROM_CRONJOB,
            {
                "kind": "Job",
                "apiVersion": "batch/v1",
                "metadata": {
                    "name": "manual",
                    "namespace": "w",
                    "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "CronJob",
                            "name": "cj",
                            "uid": "5724bf23-6afa-4821-b2b1-3722d294f1e4",
                            "controller": True,
                        }
                    ],
                },
                "spec": {
                    "parallelism": 1,
                    "completions": 1,
                    "backoffLimit": 6,
                    "template": {
                        "metadata": {},
                        "spec": {
                            "containers": [
                                {
                                    "name": "cj",
                                    "image": "busybox",
                                    "command": ["echo", "hi"],
                                    "resources": {},
                                    "terminationMessagePath": "/dev/termination-log",
                                    "terminationMessagePolicy": "File",
                                    "imagePullPolicy": "Always",
                                }
                            ],
                            "restartPolicy": "OnFailure",
                            "terminationGracePeriodSeconds": 30,
                            "dnsPolicy": "ClusterFirst",
                            "securityContext": {},
                            "schedulerName": "default-scheduler",
                            "priority": 0,
                            "enableServiceLinks": True,
                        },
                    },
                    "completionMode": "NonIndexed",
                    "suspend": False,
                },
            },
            id="job_from_cronjob",
        ),
        pytest.param(
            PDB_MIN_AVAILABLE,
            {
                "kind": "PodDisruptionBudget",
                "apiVersion": "policy/v1",
                "metadata": {"name": "web", "namespace": "demo"},
                "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}},
            },
            id="pdb_min_available",
        ),
        pytest.param(
            PDB_MAX_UNAVAILABLE,
            {
                "kind": "PodDisruptionBudget",
                "apiVersion": "policy/v1",
                "metadata": {"name": "db", "namespace": "demo"},
                "spec": {"selector": {"matchLabels": {"app": "db", "tier": "data"}}, "maxUnavailable": 0},
            },
            id="pdb_max_unavailable",
        ),
    ],
)
def test_decoded_body_equals_kubectl_json(fixture: str, expected: dict[str, Any]) -> None:
    assert _decode(fixture) == expected


def test_job_from_rich_cronjob_keeps_the_whole_template() -> None:
    job = _decode(JOB_FROM_RICH_CRONJOB)
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    spec = job["spec"]
    assert (
        spec["backoffLimit"],
        spec["completions"],
        spec["parallelism"],
        spec["ttlSecondsAfterFinished"],
    ) == (
        0,
        5,
        2,
        0,
    )
    assert spec["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [42, 43]
    assert spec["podFailurePolicy"]["rules"][1]["onPodConditions"] == [
        {"type": "DisruptionTarget", "status": "True"}
    ]
    assert spec["suspend"] is False
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 0  # a pointer: an explicit 0 is kept
    assert (pod["automountServiceAccountToken"], pod["enableServiceLinks"]) == (False, False)
    assert pod["tolerations"][0] == {
        "key": "k",
        "operator": "Equal",
        "value": "v",
        "effect": "NoExecute",
        "tolerationSeconds": -5,  # a 10-byte two's complement varint
    }
    assert pod["securityContext"]["supplementalGroups"] == [4000, 5000]
    assert pod["securityContext"]["runAsNonRoot"] is False
    assert pod["dnsConfig"]["options"] == [{"name": "ndots", "value": "2"}, {"name": "edns0"}]
    affinity = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert affinity["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["a", "b"]
    assert pod["topologySpreadConstraints"][0]["matchLabelKeys"] == ["pod-template-hash"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["scratch"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
    assert volumes["cfg"]["configMap"] == {
        "name": "cm",
        "items": [{"key": "a", "path": "a.txt", "mode": 256}],
        "defaultMode": 420,
        "optional": True,
    }
    assert volumes["proj"]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3600
    assert volumes["info"]["downwardAPI"]["items"][1]["resourceFieldRef"]["divisor"] == "1m"
    assert pod["initContainers"][0]["restartPolicy"] == "Always"  # a sidecar
    main, side = pod["containers"]
    assert main["env"][1] == {"name": "EMPTY"}
    assert main["env"][3]["valueFrom"] == {
        "resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}
    }
    assert main["envFrom"] == [
        {"prefix": "CFG_", "configMapRef": {"name": "cm"}},
        {"secretRef": {"name": "s", "optional": False}},
    ]
    assert main["ports"][1] == {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "0.0.0.0"}
    assert main["resources"]["limits"] == {"cpu": "2", "memory": "512Mi", "ephemeral-storage": "1Gi"}
    assert main["livenessProbe"]["httpGet"]["port"] == "http"  # IntOrString, the string form
    assert main["readinessProbe"]["tcpSocket"]["port"] == 8080  # IntOrString, the int form
    assert main["startupProbe"]["exec"] == {"command": ["cat", "/ready"]}
    assert main["lifecycle"]["preStop"] == {"sleep": {"seconds": 3}}
    assert main["securityContext"]["runAsUser"] == 0
    assert (main["stdin"], main["tty"]) == (True, True)
    assert side["readinessProbe"]["grpc"] == {"port": 9090, "service": "health"}
    assert side["resizePolicy"] == [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]


def test_job_from_cronjob_with_newer_pod_fields() -> None:
    pod = _decode(JOB_FROM_NEWER_FIELDS)["spec"]["template"]["spec"]
    assert (pod["hostUsers"], pod["schedulingGates"]) == (False, [{"name": "example.com/gate"}])
    assert pod["securityContext"] == {
        "appArmorProfile": {"type": "RuntimeDefault"},
        "supplementalGroupsPolicy": "Strict",
        "seLinuxChangePolicy": "MountOption",
    }
    term = pod["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0][
        "podAffinityTerm"
    ]
    assert (term["matchLabelKeys"], term["mismatchLabelKeys"], term["namespaceSelector"]) == (
        ["x"],
        ["y"],
        {},
    )
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["c"]["csi"]["nodePublishSecretRef"] == {"name": "s"}
    claim = volumes["e"]["ephemeral"]["volumeClaimTemplate"]
    assert claim["spec"]["resources"] == {"requests": {"storage": "1Gi"}}
    assert volumes["i"]["image"] == {"reference": "depot:5000/data:1", "pullPolicy": "IfNotPresent"}
    container = pod["containers"][0]
    assert container["volumeMounts"][0]["recursiveReadOnly"] == "Disabled"
    assert container["lifecycle"]["postStart"] == {"tcpSocket": {"port": 81}}


# -- a tiny protobuf encoder, to build bodies kubectl does not send ------------------------------
def _varint(number: int) -> bytes:
    number &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number: int, value: int | str | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _body(api_version: str, kind: str, *object_fields: bytes) -> bytes:
    type_meta = _field(1, api_version) + _field(2, kind)
    return protobuf.MAGIC + _field(1, type_meta) + _field(2, b"".join(object_fields))


@pytest.mark.parametrize("version", ["policy/v1", "policy/v1beta1"])
def test_eviction_with_delete_options(version: str) -> None:
    meta = _field(1, "web-0") + _field(3, "demo") + _field(8, b"")  # creationTimestamp: the zero time
    preconditions = _field(1, "1234-uid") + _field(2, "42")
    options = _field(1, 0) + _field(2, preconditions) + _field(4, "Foreground") + _field(5, "All")
    eviction = protobuf.decode(_body(version, "Eviction", _field(1, meta), _field(2, options)))
    assert eviction == {
        "apiVersion": version,
        "kind": "Eviction",
        "metadata": {"name": "web-0", "namespace": "demo"},
        "deleteOptions": {
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": "1234-uid", "resourceVersion": "42"},
            "propagationPolicy": "Foreground",
            "dryRun": ["All"],
        },
    }


def test_times_negative_numbers_and_packed_integers() -> None:
    stamp = _field(1, 1_767_225_600) + _field(2, 5)  # 2026-01-01T00:00:00Z (and 5 ns)
    meta = _field(1, "p") + _field(8, stamp)
    security = _field(2, -1) + _field(4, _varint(7) + _varint(8))  # runAsUser -1, packed groups
    pod_spec = _field(14, security)
    template = _field(1, meta) + _field(2, pod_spec)
    job = protobuf.decode(_body("batch/v1", "Job", _field(1, meta), _field(2, _field(6, template))))
    assert job["metadata"] == {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"}
    assert job["spec"]["template"]["spec"]["securityContext"] == {
        "runAsUser": -1,
        "supplementalGroups": [7, 8],
    }


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (_body("apps/v1", "Deployment", _field(9, "x")), "the object has protobuf field number 9"),
        (
            _body(
                "apps/v1",
                "Deployment",
                _field(2, _field(3, _field(2, _field(2, _field(1, "c") + _field(99, 1))))),
            ),
            "spec.template.spec.containers[0] has protobuf field number 99",
        ),
        (
            _body("v1", "Namespace", _field(1, _field(16, "x"))),  # 16 (initializers) left ObjectMeta in 1.14
            "metadata has protobuf field number 16",
        ),
        (
            _body("policy/v1", "PodDisruptionBudget", _field(2, _field(2, _field(3, "x")))),
            "spec.selector has protobuf field number 3",
        ),
    ],
)
def test_unknown_fields_are_refused_not_dropped(body: bytes, where: str) -> None:
    with pytest.raises(ApiError) as error:
        protobuf.decode(body)
    assert (error.value.code, error.value.reason) == (415, "UnsupportedMediaType")
    assert where in error.value.message
    assert "send it as application/json or application/yaml" in error.value.message


def test_known_server_owned_fields_are_dropped() -> None:
    status = _field(3, _field(1, 5))  # a Deployment's status (observedGeneration 5)
    managed = _field(17, _field(1, "kubectl"))
    deployment = protobuf.decode(_body("apps/v1", "Deployment", _field(1, _field(1, "d") + managed), status))
    assert deployment == {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}
