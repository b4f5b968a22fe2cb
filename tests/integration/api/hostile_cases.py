"""One hundred requests a hostile or careless client sends, and the 4xx each must get.

Used by test_bad_requests.py against namespace ``hostile``, which holds pod ``web`` and
ConfigMap ``cm``. Each case: id, method, path, raw body, content type, expected code, and a
fragment of the Status message. Grouped as the issue lists them: oversized, deep, malformed,
wrong encodings, huge numbers, unicode tricks, duplicate keys, wrong types, YAML tricks,
unknown fields, bad query parameters, bad content types, bad paths.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from typing import Any

NS = "hostile"
PODS = f"/api/v1/namespaces/{NS}/pods"
WEB = f"{PODS}/web"
CMS = f"/api/v1/namespaces/{NS}/configmaps"
LIMIT = 3 * 1024 * 1024
TOO_LARGE = "Request entity too large: limit is 3145728"
UNDECODABLE = "could not be decoded"
JSON, YAML, MERGE = "application/json", "application/yaml", "application/merge-patch+json"
JSON_PATCH, SMP = "application/json-patch+json", "application/strategic-merge-patch+json"
STRICT = "?fieldValidation=Strict"


@dataclass(frozen=True)
class Case:
    """One bad request and the answer it must get."""

    id: str
    method: str
    path: str
    body: bytes | None
    code: int
    fragment: str
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False


def pod(name: str = "p", **spec: Any) -> dict[str, Any]:
    containers = [{"name": "c", "image": "busybox:1.36"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": containers, **spec},
    }


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


def text_pod(name_json: str) -> bytes:
    """A pod whose name is given as raw JSON text (escapes kept as written)."""
    return (
        '{"apiVersion":"v1","kind":"Pod","metadata":{"name":' + name_json + "},"
        '"spec":{"containers":[{"name":"c","image":"busybox"}]}}'
    ).encode("utf-8", "surrogatepass")


def with_value(raw: str) -> bytes:
    """A pod whose terminationGracePeriodSeconds is the raw JSON ``raw``."""
    return (
        '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"n"},"spec":{"terminationGracePeriodSeconds":'
        + raw
        + ',"containers":[{"name":"c","image":"busybox"}]}}'
    ).encode()


def big(size: int) -> bytes:
    return js({"metadata": {"name": "big"}, "data": {"k": "x" * size}})


def deep_json(levels: int, opener: str = "[", closer: str = "]") -> bytes:
    return (opener * levels + closer * levels).encode()


def deep_yaml(levels: int) -> bytes:
    return "".join(f"{'  ' * i}a:\n" for i in range(levels)).encode() + b"  " * levels + b"b: 1\n"


LAUGHS = b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + b"".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n".encode() for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)
POD_YAML = (
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: y\nspec:\n  containers:\n  - name: c\n    image: busybox\n"
)

CASES: list[Case] = [
    # -- oversized: 413 before or while reading ---------------------------------------------------
    Case("4.8 MB json create", "POST", CMS, big(4_800_000), 413, TOO_LARGE),
    Case("limit plus one byte", "POST", CMS, big(LIMIT + 1 - len(big(0))), 413, TOO_LARGE),
    Case("4.8 MB chunked", "POST", CMS, big(4_800_000), 413, TOO_LARGE, chunked=True),
    Case("3.5 MB yaml", "POST", CMS, b"data:\n  k: " + b"x" * 3_500_000 + b"\n", 413, TOO_LARGE, YAML),
    Case("4 MB update", "PUT", f"{CMS}/cm", big(4_000_000), 413, TOO_LARGE),
    Case("4 MB merge patch", "PATCH", f"{CMS}/cm", big(4_000_000), 413, TOO_LARGE, MERGE),
    Case(
        "gzip bomb",
        "POST",
        CMS,
        gzip.compress(b" " * 8_000_000 + b"{}"),
        413,
        TOO_LARGE,
        headers={"Content-Encoding": "gzip"},
    ),
    # -- deep ---------------------------------------------------------------------------------------
    Case("json array 100000 deep", "POST", PODS, deep_json(100_000), 400, "nests 100000 levels"),
    Case("json object 100000 deep", "POST", PODS, b'{"a":' * 100_000 + b"1" + b"}" * 100_000, 400, "levels"),
    Case("json 101 deep", "POST", PODS, deep_json(101), 400, "more than the 100"),
    Case("yaml flow 100000 deep", "POST", PODS, deep_json(100_000), 400, UNDECODABLE, YAML),
    Case("yaml block 150 deep", "POST", PODS, deep_yaml(150), 400, "levels this server accepts", YAML),
    Case(
        "deep merge patch", "PATCH", WEB, b'{"metadata":' * 5000 + b"{}" + b"}" * 5000, 400, "levels", MERGE
    ),
    Case(
        "deep json patch value",
        "PATCH",
        WEB,
        b'[{"op":"add","path":"/metadata/x","value":' + deep_json(3000) + b"}]",
        400,
        "levels",
        JSON_PATCH,
    ),
    # -- malformed JSON -----------------------------------------------------------------------------
    Case("truncated object", "POST", PODS, b'{"metadata": {"name": "x"', 400, UNDECODABLE),
    Case("trailing garbage", "POST", PODS, js(pod()) + b" x", 400, "Extra data"),
    Case("single quotes", "POST", PODS, b"{'kind': 'Pod'}", 400, UNDECODABLE),
    Case("trailing comma", "POST", PODS, b'{"kind": "Pod",}', 400, UNDECODABLE),
    Case("comment", "POST", PODS, b'// a pod\n{"kind": "Pod"}', 400, UNDECODABLE),
    Case("missing colon", "POST", PODS, b'{"kind" "Pod"}', 400, UNDECODABLE),
    Case("byte order mark", "POST", PODS, b"\xef\xbb\xbf" + js(pod()), 400, UNDECODABLE),
    Case("unterminated string", "POST", PODS, b'{"kind": "Pod', 400, UNDECODABLE),
    Case("invalid escape", "POST", PODS, b'{"kind": "P\\xod"}', 400, UNDECODABLE),
    Case("whitespace only", "POST", PODS, b"   \n ", 400, UNDECODABLE),
    # -- wrong encodings ----------------------------------------------------------------------------
    Case(
        "latin-1 in a value",
        "POST",
        PODS,
        text_pod('"caf\xe9"').replace(b"\xc3\xa9", b"\xe9"),
        400,
        "not valid UTF-8",
    ),
    Case(
        "overlong utf-8", "POST", PODS, text_pod('"a"').replace(b'"a"', b'"\xc0\xaf"'), 400, "not valid UTF-8"
    ),
    Case("utf-16 json", "POST", PODS, json.dumps(pod()).encode("utf-16"), 400, "not valid UTF-8"),
    Case(
        "cesu-8 surrogate bytes",
        "POST",
        PODS,
        text_pod('"a"').replace(b'"a"', b'"\xed\xa0\x80"'),
        400,
        "UTF-8",
    ),
    Case(
        "latin-1 yaml",
        "POST",
        PODS,
        POD_YAML.replace("name: y", "name: caf\xe9").encode("latin-1"),
        400,
        "not valid UTF-8",
        YAML,
    ),
    Case(
        "latin-1 charset header",
        "POST",
        PODS,
        text_pod('"caf\xe9"').replace(b"\xc3\xa9", b"\xe9"),
        400,
        "UTF-8",
        "application/json; charset=iso-8859-1",
    ),
    # -- unicode tricks -----------------------------------------------------------------------------
    Case("lone surrogate name", "POST", PODS, text_pod('"\\ud800"'), 400, "lone UTF-16 surrogate"),
    Case("lone low surrogate", "POST", PODS, text_pod('"a\\udc00"'), 400, "surrogate"),
    Case(
        "surrogate in a label",
        "POST",
        PODS,
        js(pod()).replace(b'"name": "p"', b'"name": "p", "labels": {"a": "\\ud83d"}'),
        400,
        "surrogate",
    ),
    Case(
        "surrogate in a key",
        "POST",
        PODS,
        js(pod()).replace(b'"name": "p"', b'"name": "p", "\\udfff": 1'),
        400,
        "surrogate",
    ),
    Case("NUL in a name", "POST", PODS, text_pod('"a\\u0000b"'), 422, "metadata.name"),
    Case("right-to-left override", "POST", PODS, text_pod('"abc\\u202e"'), 422, "metadata.name"),
    Case("zero-width space", "POST", PODS, text_pod('"a\\u200bb"'), 422, "metadata.name"),
    Case("fullwidth letters", "POST", PODS, text_pod('"\\uff57\\uff45\\uff42"'), 422, "metadata.name"),
    Case(
        "raw NUL in yaml",
        "POST",
        PODS,
        POD_YAML.replace("name: y", "name: y\x00").encode(),
        400,
        UNDECODABLE,
        YAML,
    ),
    # -- huge numbers -------------------------------------------------------------------------------
    Case("1e400", "POST", PODS, with_value("1e400"), 400, "out of range"),
    Case("NaN", "POST", PODS, with_value("NaN"), 400, "NaN"),
    Case("Infinity", "POST", PODS, with_value("Infinity"), 400, "Infinity"),
    Case("-Infinity", "POST", PODS, with_value("-Infinity"), 400, "Infinity"),
    Case("30-digit integer", "POST", PODS, with_value("9" * 30), 400, "too large"),
    Case("5000-digit integer", "POST", PODS, with_value("9" * 5000), 400, "too large"),
    Case("int64 overflow by one", "POST", PODS, with_value(str(2**63)), 400, "too large"),
    Case("huge negative", "POST", PODS, with_value("-" + "9" * 25), 400, "too large"),
    Case(
        "yaml .inf",
        "POST",
        PODS,
        (POD_YAML + "  terminationGracePeriodSeconds: .inf\n").encode(),
        400,
        "finite",
        YAML,
    ),
    Case(
        "yaml .nan",
        "POST",
        PODS,
        (POD_YAML + "  terminationGracePeriodSeconds: .nan\n").encode(),
        400,
        "finite",
        YAML,
    ),
    Case(
        "yaml huge hex",
        "POST",
        PODS,
        (POD_YAML + "  terminationGracePeriodSeconds: 0x7fffffffffffffffffff\n").encode(),
        400,
        "too large",
        YAML,
    ),
    # -- duplicate keys (upstream: strict decoding error) --------------------------------------------
    Case(
        "duplicate name, strict",
        "POST",
        PODS + STRICT,
        js(pod()).replace(b'"name": "p"', b'"name": "p", "name": "q"'),
        400,
        'duplicate field "metadata.name"',
    ),
    Case(
        "duplicate kind, strict",
        "POST",
        PODS + STRICT,
        js(pod()).replace(b'"kind": "Pod"', b'"kind": "Pod", "kind": "Pod"'),
        400,
        'duplicate field "kind"',
    ),
    Case(
        "duplicate yaml key, strict",
        "POST",
        PODS + STRICT,
        POD_YAML.replace("  name: y\n", "  name: y\n  name: z\n").encode(),
        400,
        'key "name" already set in map',
        YAML,
    ),
    Case(
        "duplicate key in a merge patch, strict",
        "PATCH",
        WEB + STRICT,
        b'{"metadata": {"labels": {"a": "1", "a": "2"}}}',
        400,
        'duplicate field "metadata.labels.a"',
        MERGE,
    ),
    Case(
        "duplicate container key, strict",
        "POST",
        PODS + STRICT,
        js(pod()).replace(b'"image": "busybox:1.36"', b'"image": "a", "image": "b"'),
        400,
        'duplicate field "spec.containers[0].image"',
    ),
    # -- wrong types --------------------------------------------------------------------------------
    Case("create with an array", "POST", PODS, b"[1, 2]", 400, "must be a Pod (a JSON object), got an array"),
    Case("create with a string", "POST", PODS, b'"pod"', 400, "got a string"),
    Case("create with a number", "POST", PODS, b"42", 400, "got a number"),
    Case("create with null", "POST", PODS, b"null", 400, "got nothing"),
    Case("create with true", "POST", CMS, b"true", 400, "got a boolean"),
    Case("merge patch with an array", "PATCH", WEB, b"[]", 400, "must be a patch"),
    Case("json patch with an object", "PATCH", WEB, b"{}", 400, "list of operations", JSON_PATCH),
    Case("json patch op a number", "PATCH", WEB, b"[1]", 400, "", JSON_PATCH),
    Case("json patch unknown op", "PATCH", WEB, b'[{"op": "frob", "path": "/x"}]', 400, "", JSON_PATCH),
    Case(
        "json patch relative path",
        "PATCH",
        WEB,
        b'[{"op": "add", "path": "x", "value": 1}]',
        400,
        "",
        JSON_PATCH,
    ),
    Case("delete options an array", "DELETE", f"{CMS}/cm", b"[]", 400, "DeleteOptions"),
    Case("binding an array", "POST", f"{WEB}/binding", b"[]", 400, "must be a Binding"),
    Case("eviction a string", "POST", f"{WEB}/eviction", b'"evict"', 400, "must be an Eviction"),
    Case(
        "access review a list",
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        b"[]",
        400,
        "SelfSubjectAccessReview",
    ),
    Case("metadata a list", "POST", PODS, js({**pod(), "metadata": []}), 400, "metadata must be an object"),
    Case("name a number", "POST", PODS, js({**pod(), "metadata": {"name": 7}}), 422, "metadata.name"),
    Case(
        "labels a list",
        "POST",
        PODS,
        js({**pod(), "metadata": {"name": "l", "labels": ["a"]}}),
        422,
        "labels",
    ),
    Case(
        "containers an object",
        "POST",
        PODS,
        js({**pod(), "spec": {"containers": {"name": "c"}}}),
        422,
        "spec.containers",
    ),
    Case("spec a string", "POST", PODS, js({**pod(), "spec": "run"}), 422, "spec"),
    # -- YAML tricks --------------------------------------------------------------------------------
    Case(
        "yaml python tag",
        "POST",
        PODS,
        b"!!python/object/apply:os.system ['true']\n",
        400,
        "no JSON equivalent",
        YAML,
    ),
    Case(
        "yaml binary tag",
        "POST",
        CMS,
        b"metadata: {name: b}\ndata: {k: !!binary aGk=}\n",
        400,
        "binary",
        YAML,
    ),
    Case("yaml billion laughs", "POST", CMS, LAUGHS, 400, "excessive aliasing", YAML),
    Case("yaml self-reference", "POST", CMS, b"&a [*a]\n", 400, "contains itself", YAML),
    Case(
        "yaml two documents",
        "POST",
        PODS,
        (POD_YAML + "---\n" + POD_YAML).encode(),
        400,
        "single document",
        YAML,
    ),
    Case("yaml complex key", "POST", PODS, b"? [a, b]\n: 1\n", 400, "must be a string", YAML),
    Case("yaml set", "POST", CMS, b"metadata: {name: s}\ndata: !!set {a, b}\n", 400, "set", YAML),
    # -- unknown fields (fieldValidation=Strict, as kubectl sends it) --------------------------------
    Case(
        "unknown top field, strict",
        "POST",
        PODS + STRICT,
        js({**pod(), "spek": {}}),
        400,
        'unknown field "spek"',
    ),
    Case(
        "unknown container field, strict",
        "POST",
        PODS + STRICT,
        js(pod()).replace(b'"image"', b'"imagex": 1, "image"'),
        400,
        'unknown field "spec.containers[0].imagex"',
    ),
    Case(
        "unknown field in a patch, strict",
        "PATCH",
        WEB + STRICT,
        b'{"spec": {"nodeNmae": "x"}}',
        400,
        'unknown field "spec.nodeNmae"',
        MERGE,
    ),
    # -- bad query parameters -----------------------------------------------------------------------
    Case("limit abc", "GET", f"{PODS}?limit=abc", None, 400, "limit must be an integer"),
    Case("limit 1e3", "GET", f"{PODS}?limit=1e3", None, 400, "limit must be an integer"),
    Case("limit 25 digits", "GET", f"{PODS}?limit={'9' * 25}", None, 400, "limit must be an integer"),
    Case("limit arabic digits", "GET", f"{PODS}?limit=%D9%A1%D9%A2", None, 400, "limit must be an integer"),
    Case(
        "watch timeoutSeconds negative",
        "GET",
        f"{PODS}?watch=1&timeoutSeconds=-5",
        None,
        400,
        "timeoutSeconds must not be negative",
    ),
    Case(
        "watch timeoutSeconds word",
        "GET",
        f"{PODS}?watch=1&timeoutSeconds=soon",
        None,
        400,
        "timeoutSeconds must be an integer",
    ),
    Case(
        "list resourceVersion word",
        "GET",
        f"{PODS}?resourceVersion=latest",
        None,
        400,
        "invalid resource version",
    ),
    Case(
        "watch resourceVersion 30 digits",
        "GET",
        f"{PODS}?watch=1&resourceVersion={'9' * 30}",
        None,
        400,
        "invalid resource version",
    ),
    Case(
        "gracePeriodSeconds negative",
        "DELETE",
        f"{CMS}/cm?gracePeriodSeconds=-1",
        None,
        400,
        "gracePeriodSeconds must not be negative",
    ),
    Case(
        "gracePeriodSeconds a century",
        "DELETE",
        f"{WEB}?gracePeriodSeconds=3153600000",
        None,
        400,
        "gracePeriodSeconds must be at most",
    ),
    Case(
        "gracePeriodSeconds fraction",
        "DELETE",
        f"{CMS}/cm?gracePeriodSeconds=1.5",
        None,
        400,
        "gracePeriodSeconds must be an integer",
    ),
    Case(
        "propagationPolicy sideways",
        "DELETE",
        f"{CMS}/cm?propagationPolicy=Sideways",
        None,
        422,
        'Unsupported value: "Sideways"',
    ),
    Case(
        "dryRun some",
        "POST",
        f"{CMS}?dryRun=Some",
        js({"metadata": {"name": "d"}}),
        400,
        'supported values: "All"',
    ),
    Case(
        "fieldValidation loose",
        "POST",
        f"{CMS}?fieldValidation=Loose",
        js({"metadata": {"name": "f"}}),
        400,
        "fieldValidation must be one of",
    ),
    Case(
        "fieldManager too long",
        "POST",
        f"{CMS}?fieldManager={'m' * 200}",
        js({"metadata": {"name": "f"}}),
        422,
        "fieldManager: Too long",
    ),
    Case(
        "fieldManager control character",
        "POST",
        f"{CMS}?fieldManager=a%01b",
        js({"metadata": {"name": "f"}}),
        422,
        "fieldManager: Invalid value",
    ),
    Case(
        "labelSelector unclosed set",
        "GET",
        f"{PODS}?labelSelector=a%20in%20(",
        None,
        400,
        "unable to parse requirement",
    ),
    Case(
        "fieldSelector unknown field",
        "GET",
        f"{PODS}?fieldSelector=spec.bogus%3Dx",
        None,
        400,
        "field label not supported",
    ),
    Case(
        "newline in fieldValidation",
        "POST",
        f"{CMS}?fieldValidation=a%0AWarning:%20forged",
        js({"metadata": {"name": "f"}}),
        400,
        'got "a\\nWarning: forged"',
    ),
    Case(
        "newline in an unknown field, strict",
        "POST",
        PODS + STRICT,
        js({**pod(), "a\nb": 1}),
        400,
        'unknown field "a\\nb"',
    ),
    Case(
        "protobuf kind with a newline",
        "POST",
        PODS,
        b"k8s\x00\n\x0c\n\x02v1\x12\x06Na\nmes",
        415,
        "'Na\\nmes' cannot be sent",
        "application/vnd.kubernetes.protobuf",
    ),
    # -- bad content types --------------------------------------------------------------------------
    Case("xml body", "POST", PODS, b"<pod/>", 415, "", "application/xml"),
    Case("multipart body", "POST", PODS, b"--x--", 415, "", "multipart/form-data; boundary=x"),
    Case(
        "protobuf garbage",
        "POST",
        PODS,
        b"\x00\x01\x02garbage",
        400,
        "magic",
        "application/vnd.kubernetes.protobuf",
    ),
    Case(
        "protobuf magic then garbage",
        "POST",
        PODS,
        b"k8s\x00\xff\xff\xff\xff\xff\xff\xff",
        400,
        "protobuf",
        "application/vnd.kubernetes.protobuf",
    ),
    Case("patch as plain json", "PATCH", WEB, b'{"metadata": {}}', 415, "unknown format", "application/json"),
    # -- bad paths ----------------------------------------------------------------------------------
    Case(
        "status then more", "GET", f"{WEB}/status/extra", None, 404, "could not find the requested resource"
    ),
    Case("api v2", "GET", "/api/v2/pods", None, 404, "could not find the requested resource"),
    Case("dot-dot name", "GET", f"{PODS}/%2e%2e", None, 404, "not found"),
    Case("invalid utf-8 in a path", "GET", f"{PODS}/%ff%fe", None, 404, "not found"),
    Case("4000-character name", "GET", f"{PODS}/{'a' * 4000}", None, 404, "not found"),
    Case("TRACE a collection", "TRACE", PODS, None, 405, "does not allow this method"),
    # -- the lab's own routes (login, users) decode bodies the same way -------------------------------
    Case("login 30000 deep", "POST", "/nestlab/v1/login", deep_json(30_000), 400, "levels"),
    Case("login body over 64 KiB", "POST", "/nestlab/v1/login", big(70_000), 413, "limit is 65536"),
    Case("user with a lone surrogate", "POST", "/nestlab/v1/users", text_pod('"\\udc00"'), 400, "surrogate"),
]
