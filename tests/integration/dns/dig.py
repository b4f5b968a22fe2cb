"""Query a DNS server with dig (bind9-dnsutils): status and answer records, as a client sees them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nestlab.runtime import proc

_STATUS = re.compile(r"status: ([A-Z]+)")


@dataclass(frozen=True)
class Answer:
    status: str
    """NOERROR, NXDOMAIN, REFUSED..."""
    records: frozenset[tuple[str, str, str]]
    """(name, type, data) of the answer section."""
    authority: frozenset[tuple[str, str, str]]

    def data(self, kind: str) -> set[str]:
        return {data for _, found, data in self.records if found == kind}


def _section(text: str, title: str) -> frozenset[tuple[str, str, str]]:
    found = set()
    inside = False
    for line in text.splitlines():
        if line.startswith(";; "):
            inside = line.startswith(f";; {title} SECTION")
            continue
        if inside and line.strip():
            name, _ttl, _klass, kind, data = line.split(None, 4)
            found.add((name, kind, " ".join(data.split())))
    return frozenset(found)


def dig(port: int, name: str, kind: str = "A", *, tcp: bool = False) -> Answer:
    argv = ["dig", "@127.0.0.1", "-p", str(port), "+tries=1", "+time=3", "+nocookie", "+noall", "+comments"]
    argv += ["+answer", "+authority", *(["+tcp"] if tcp else []), name, kind]
    text = proc.run(argv, timeout=15, check=False).stdout
    match = _STATUS.search(text)
    assert match is not None, f"dig {name} {kind}: no answer: {text}"
    return Answer(match.group(1), _section(text, "ANSWER"), _section(text, "AUTHORITY"))
