"""The whole cluster zone, kept per Service, and the unbound change each Service update implies.

Pure. Records are computed one Service at a time (:func:`nestlab.dns.records.service_records`),
but unbound removes by *name*, and a name can hold records of more than one Service (two headless
Services selecting the same pod give its address two PTRs). So the zone keeps, for every name,
how many Services contribute each record, and turns "Service X now has these records" into the
name-level :class:`~nestlab.dns.records.Change` over the whole zone: removing X's PTR never
removes Y's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from nestlab.dns.records import Change, Record, by_name, diff


class Zone:
    """Records per Service key (``namespace/name``), and the union unbound should hold."""

    def __init__(self) -> None:
        self._services: dict[str, frozenset[Record]] = {}
        self._names: dict[str, Counter[Record]] = {}

    def records(self) -> frozenset[Record]:
        """Everything unbound should hold for the Services known."""
        return frozenset(r for counts in self._names.values() for r in counts)

    def keys(self) -> set[str]:
        """The Service keys holding records."""
        return set(self._services)

    def of(self, key: str) -> frozenset[Record]:
        """The records last set for one Service."""
        return self._services.get(key, frozenset())

    def _at(self, name: str) -> set[Record]:
        return set(self._names.get(name, Counter()))

    def update(self, changes: Mapping[str, Iterable[Record]]) -> Change:
        """Set the records of each Service key in ``changes`` (empty: the Service is gone) and return
        what unbound must do, for the names touched only."""
        touched: set[str] = set()
        before: dict[str, set[Record]] = {}
        for key, records in changes.items():
            new = frozenset(records)
            old = self._services.get(key, frozenset())
            if new == old:
                continue
            for name in by_name(old | new):
                if name not in before:
                    before[name] = self._at(name)
                touched.add(name)
            for record in old:
                counts = self._names[record.name]
                counts[record] -= 1
                if counts[record] <= 0:
                    del counts[record]
                if not counts:
                    del self._names[record.name]
            for record in new:
                self._names.setdefault(record.name, Counter())[record] += 1
            if new:
                self._services[key] = new
            else:
                self._services.pop(key, None)
        old_set = {r for name in touched for r in before[name]}
        new_set = {r for name in touched for r in self._at(name)}
        return diff(old_set, new_set)
