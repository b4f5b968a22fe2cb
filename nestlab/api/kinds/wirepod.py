"""core/v1 protobuf schemas of a pod template: containers, volumes, scheduling, the pod spec.

``kubectl create job --from=cronjob/NAME`` copies a CronJob's whole stored pod template into a
protobuf body, so these tables list every field a pod template can hold (upstream's core/v1
generated.proto numbers), except the cloud-provider volume sources a lab pod cannot use: a body
carrying one is refused with 415 naming the field, never silently stripped.
"""

from __future__ import annotations

from nestlab.api.kinds.wiremeta import IGNORE, LABEL_SELECTOR, OBJECT_META, Schema, inline, listed

# -- core/v1: what a container holds ----------------------------------------------------------
_LOCAL_REF: Schema = {1: ("name", "str")}
_KEY_SELECTOR: Schema = {1: ("", inline(_LOCAL_REF)), 2: ("key", "str"), 3: ("optional", "bool")}
_OBJECT_FIELD: Schema = {1: ("apiVersion", "str"), 2: ("fieldPath", "str")}
_RESOURCE_FIELD: Schema = {1: ("containerName", "str"), 2: ("resource", "str"), 3: ("divisor", "quantity")}
_ENV_VAR: Schema = {
    1: ("name", "str"),
    2: ("value", "str"),
    3: (
        "valueFrom",
        {
            1: ("fieldRef", _OBJECT_FIELD),
            2: ("resourceFieldRef", _RESOURCE_FIELD),
            3: ("configMapKeyRef", _KEY_SELECTOR),
            4: ("secretKeyRef", _KEY_SELECTOR),
        },
    ),
}
_ENV_SOURCE: Schema = {1: ("", inline(_LOCAL_REF)), 2: ("optional", "bool")}
_ENV_FROM: Schema = {1: ("prefix", "str"), 2: ("configMapRef", _ENV_SOURCE), 3: ("secretRef", _ENV_SOURCE)}
_PORT: Schema = {
    1: ("name", "str"),
    2: ("hostPort", "int0"),
    3: ("containerPort", "int"),
    4: ("protocol", "str"),
    5: ("hostIP", "str"),
}
_RESOURCES: Schema = {
    1: ("limits", "qmap"),
    2: ("requests", "qmap"),
    3: ("claims", listed({1: ("name", "str"), 2: ("request", "str")})),
}
_VOLUME_MOUNT: Schema = {
    1: ("name", "str"),
    2: ("readOnly", "bool0"),
    3: ("mountPath", "str"),
    4: ("subPath", "str"),
    5: ("mountPropagation", "str"),
    6: ("subPathExpr", "str"),
    7: ("recursiveReadOnly", "str"),
}
_EXEC: Schema = {1: ("command", "strs")}
_HTTP_GET: Schema = {
    1: ("path", "str"),
    2: ("port", "intstr"),
    3: ("host", "str"),
    4: ("scheme", "str"),
    5: ("httpHeaders", listed({1: ("name", "str"), 2: ("value", "str")})),
}
_TCP_SOCKET: Schema = {1: ("port", "intstr"), 2: ("host", "str")}
_PROBE_HANDLER: Schema = {
    1: ("exec", _EXEC),
    2: ("httpGet", _HTTP_GET),
    3: ("tcpSocket", _TCP_SOCKET),
    4: ("grpc", {1: ("port", "int"), 2: ("service", "str")}),
}
_PROBE: Schema = {
    1: ("", inline(_PROBE_HANDLER)),
    2: ("initialDelaySeconds", "int0"),
    3: ("timeoutSeconds", "int0"),
    4: ("periodSeconds", "int0"),
    5: ("successThreshold", "int0"),
    6: ("failureThreshold", "int0"),
    7: ("terminationGracePeriodSeconds", "int"),
}
_LIFECYCLE_HANDLER: Schema = {
    1: ("exec", _EXEC),
    2: ("httpGet", _HTTP_GET),
    3: ("tcpSocket", _TCP_SOCKET),
    4: ("sleep", {1: ("seconds", "int")}),
}
_LIFECYCLE: Schema = {
    1: ("postStart", _LIFECYCLE_HANDLER),
    2: ("preStop", _LIFECYCLE_HANDLER),
    3: ("stopSignal", "str"),
}
_SE_LINUX: Schema = {1: ("user", "str"), 2: ("role", "str"), 3: ("type", "str"), 4: ("level", "str")}
_WINDOWS: Schema = {
    1: ("gmsaCredentialSpecName", "str"),
    2: ("gmsaCredentialSpec", "str"),
    3: ("runAsUserName", "str"),
    4: ("hostProcess", "bool"),
}
_PROFILE: Schema = {1: ("type", "str"), 2: ("localhostProfile", "str")}
_SECURITY_CONTEXT: Schema = {
    1: ("capabilities", {1: ("add", "strs"), 2: ("drop", "strs")}),
    2: ("privileged", "bool"),
    3: ("seLinuxOptions", _SE_LINUX),
    4: ("runAsUser", "int"),
    5: ("runAsNonRoot", "bool"),
    6: ("readOnlyRootFilesystem", "bool"),
    7: ("allowPrivilegeEscalation", "bool"),
    8: ("runAsGroup", "int"),
    9: ("procMount", "str"),
    10: ("windowsOptions", _WINDOWS),
    11: ("seccompProfile", _PROFILE),
    12: ("appArmorProfile", _PROFILE),
}
CONTAINER: Schema = {
    1: ("name", "str"),
    2: ("image", "str"),
    3: ("command", "strs"),
    4: ("args", "strs"),
    5: ("workingDir", "str"),
    6: ("ports", listed(_PORT)),
    7: ("env", listed(_ENV_VAR)),
    8: ("resources", _RESOURCES),
    9: ("volumeMounts", listed(_VOLUME_MOUNT)),
    10: ("livenessProbe", _PROBE),
    11: ("readinessProbe", _PROBE),
    12: ("lifecycle", _LIFECYCLE),
    13: ("terminationMessagePath", "str"),
    14: ("imagePullPolicy", "str"),
    15: ("securityContext", _SECURITY_CONTEXT),
    16: ("stdin", "bool0"),
    17: ("stdinOnce", "bool0"),
    18: ("tty", "bool0"),
    19: ("envFrom", listed(_ENV_FROM)),
    20: ("terminationMessagePolicy", "str"),
    21: ("volumeDevices", listed({1: ("name", "str"), 2: ("devicePath", "str")})),
    22: ("startupProbe", _PROBE),
    23: ("resizePolicy", listed({1: ("resourceName", "str"), 2: ("restartPolicy", "str")})),
    24: ("restartPolicy", "str"),
}

# -- core/v1: volumes (the sources a lab pod can use; cloud-provider ones are refused, 415) ----
_KEY_TO_PATH: Schema = {1: ("key", "str"), 2: ("path", "str"), 3: ("mode", "int")}
_DOWNWARD_FILE: Schema = {
    1: ("path", "str"),
    2: ("fieldRef", _OBJECT_FIELD),
    3: ("resourceFieldRef", _RESOURCE_FIELD),
    4: ("mode", "int"),
}
_PROJECTION: Schema = {
    1: ("", inline(_LOCAL_REF)),
    2: ("items", listed(_KEY_TO_PATH)),
    4: ("optional", "bool"),
}
_PVC_SPEC: Schema = {
    1: ("accessModes", "strs"),
    2: ("resources", {1: ("limits", "qmap"), 2: ("requests", "qmap")}),
    3: ("volumeName", "str"),
    4: ("selector", LABEL_SELECTOR),
    5: ("storageClassName", "str"),
    6: ("volumeMode", "str"),
    7: ("dataSource", {1: ("apiGroup", "str"), 2: ("kind", "str"), 3: ("name", "str")}),
    8: (
        "dataSourceRef",
        {1: ("apiGroup", "str"), 2: ("kind", "str"), 3: ("name", "str"), 4: ("namespace", "str")},
    ),
    9: ("volumeAttributesClassName", "str"),
}
PERSISTENT_VOLUME_CLAIM: Schema = {
    1: ("metadata", OBJECT_META),
    2: ("spec", _PVC_SPEC),
    3: ("status", IGNORE),
}
_VOLUME_SOURCE: Schema = {
    1: ("hostPath", {1: ("path", "str"), 2: ("type", "str")}),
    2: ("emptyDir", {1: ("medium", "str"), 2: ("sizeLimit", "quantity")}),
    6: (
        "secret",
        {
            1: ("secretName", "str"),
            2: ("items", listed(_KEY_TO_PATH)),
            3: ("defaultMode", "int"),
            4: ("optional", "bool"),
        },
    ),
    7: ("nfs", {1: ("server", "str"), 2: ("path", "str"), 3: ("readOnly", "bool0")}),
    10: ("persistentVolumeClaim", {1: ("claimName", "str"), 2: ("readOnly", "bool0")}),
    16: ("downwardAPI", {1: ("items", listed(_DOWNWARD_FILE)), 2: ("defaultMode", "int")}),
    19: (
        "configMap",
        {
            1: ("", inline(_LOCAL_REF)),
            2: ("items", listed(_KEY_TO_PATH)),
            3: ("defaultMode", "int"),
            4: ("optional", "bool"),
        },
    ),
    26: (
        "projected",
        {
            1: (
                "sources",
                listed(
                    {
                        1: ("secret", _PROJECTION),
                        2: ("downwardAPI", {1: ("items", listed(_DOWNWARD_FILE))}),
                        3: ("configMap", _PROJECTION),
                        4: (
                            "serviceAccountToken",
                            {1: ("audience", "str"), 2: ("expirationSeconds", "int"), 3: ("path", "str")},
                        ),
                    }
                ),
            ),
            2: ("defaultMode", "int"),
        },
    ),
    28: (
        "csi",
        {
            1: ("driver", "str"),
            2: ("readOnly", "bool"),
            3: ("fsType", "str"),
            4: ("volumeAttributes", "map"),
            5: ("nodePublishSecretRef", _LOCAL_REF),
        },
    ),
    29: ("ephemeral", {1: ("volumeClaimTemplate", {1: ("metadata", OBJECT_META), 2: ("spec", _PVC_SPEC)})}),
    30: ("image", {1: ("reference", "str"), 2: ("pullPolicy", "str")}),
}
_VOLUME: Schema = {1: ("name", "str"), 2: ("", inline(_VOLUME_SOURCE))}

# -- core/v1: scheduling and the pod spec ------------------------------------------------------
_NODE_REQUIREMENT: Schema = {1: ("key", "str"), 2: ("operator", "str"), 3: ("values", "strs")}
_NODE_TERM: Schema = {
    1: ("matchExpressions", listed(_NODE_REQUIREMENT)),
    2: ("matchFields", listed(_NODE_REQUIREMENT)),
}
_POD_AFFINITY_TERM: Schema = {
    1: ("labelSelector", LABEL_SELECTOR),
    2: ("namespaces", "strs"),
    3: ("topologyKey", "str"),
    4: ("namespaceSelector", LABEL_SELECTOR),
    5: ("matchLabelKeys", "strs"),
    6: ("mismatchLabelKeys", "strs"),
}
_POD_AFFINITY: Schema = {
    1: ("requiredDuringSchedulingIgnoredDuringExecution", listed(_POD_AFFINITY_TERM)),
    2: (
        "preferredDuringSchedulingIgnoredDuringExecution",
        listed({1: ("weight", "int"), 2: ("podAffinityTerm", _POD_AFFINITY_TERM)}),
    ),
}
_AFFINITY: Schema = {
    1: (
        "nodeAffinity",
        {
            1: (
                "requiredDuringSchedulingIgnoredDuringExecution",
                {1: ("nodeSelectorTerms", listed(_NODE_TERM))},
            ),
            2: (
                "preferredDuringSchedulingIgnoredDuringExecution",
                listed({1: ("weight", "int"), 2: ("preference", _NODE_TERM)}),
            ),
        },
    ),
    2: ("podAffinity", _POD_AFFINITY),
    3: ("podAntiAffinity", _POD_AFFINITY),
}
_TOLERATION: Schema = {
    1: ("key", "str"),
    2: ("operator", "str"),
    3: ("value", "str"),
    4: ("effect", "str"),
    5: ("tolerationSeconds", "int"),
}
_POD_SECURITY_CONTEXT: Schema = {
    1: ("seLinuxOptions", _SE_LINUX),
    2: ("runAsUser", "int"),
    3: ("runAsNonRoot", "bool"),
    4: ("supplementalGroups", "ints"),
    5: ("fsGroup", "int"),
    6: ("runAsGroup", "int"),
    7: ("sysctls", listed({1: ("name", "str"), 2: ("value", "str")})),
    8: ("windowsOptions", _WINDOWS),
    9: ("fsGroupChangePolicy", "str"),
    10: ("seccompProfile", _PROFILE),
    11: ("appArmorProfile", _PROFILE),
    12: ("supplementalGroupsPolicy", "str"),
    13: ("seLinuxChangePolicy", "str"),
}
_SPREAD: Schema = {
    1: ("maxSkew", "int"),
    2: ("topologyKey", "str"),
    3: ("whenUnsatisfiable", "str"),
    4: ("labelSelector", LABEL_SELECTOR),
    5: ("minDomains", "int"),
    6: ("nodeAffinityPolicy", "str"),
    7: ("nodeTaintsPolicy", "str"),
    8: ("matchLabelKeys", "strs"),
}
POD_SPEC: Schema = {
    1: ("volumes", listed(_VOLUME)),
    2: ("containers", listed(CONTAINER)),
    3: ("restartPolicy", "str"),
    4: ("terminationGracePeriodSeconds", "int"),
    5: ("activeDeadlineSeconds", "int"),
    6: ("dnsPolicy", "str"),
    7: ("nodeSelector", "map"),
    8: ("serviceAccountName", "str"),
    9: ("serviceAccount", "str"),
    10: ("nodeName", "str"),
    11: ("hostNetwork", "bool0"),
    12: ("hostPID", "bool0"),
    13: ("hostIPC", "bool0"),
    14: ("securityContext", _POD_SECURITY_CONTEXT),
    15: ("imagePullSecrets", listed(_LOCAL_REF)),
    16: ("hostname", "str"),
    17: ("subdomain", "str"),
    18: ("affinity", _AFFINITY),
    19: ("schedulerName", "str"),
    20: ("initContainers", listed(CONTAINER)),
    21: ("automountServiceAccountToken", "bool"),
    22: ("tolerations", listed(_TOLERATION)),
    23: ("hostAliases", listed({1: ("ip", "str"), 2: ("hostnames", "strs")})),
    24: ("priorityClassName", "str"),
    25: ("priority", "int"),
    26: (
        "dnsConfig",
        {
            1: ("nameservers", "strs"),
            2: ("searches", "strs"),
            3: ("options", listed({1: ("name", "str"), 2: ("value", "str")})),
        },
    ),
    27: ("shareProcessNamespace", "bool"),
    28: ("readinessGates", listed({1: ("conditionType", "str")})),
    29: ("runtimeClassName", "str"),
    30: ("enableServiceLinks", "bool"),
    31: ("preemptionPolicy", "str"),
    32: ("overhead", "qmap"),
    33: ("topologySpreadConstraints", listed(_SPREAD)),
    34: ("ephemeralContainers", listed({1: ("", inline(CONTAINER)), 2: ("targetContainerName", "str")})),
    35: ("setHostnameAsFQDN", "bool"),
    36: ("os", {1: ("name", "str")}),
    37: ("hostUsers", "bool"),
    38: ("schedulingGates", listed({1: ("name", "str")})),
}
POD_TEMPLATE_SPEC: Schema = {1: ("metadata", OBJECT_META), 2: ("spec", POD_SPEC)}
