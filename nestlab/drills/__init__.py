"""Failure drills as a product: ``nestlab drill NAME`` breaks the lab on purpose, measures what
clients and controllers saw, restores the lab and explains the outcome in vSphere terms.

Layers: :mod:`report` (the report model, text and JSON; pure), :mod:`health`, :mod:`timeline` and
:mod:`probe`'s summaries (pure readings), :mod:`lab` (every side effect), :mod:`base` (the shared
check/break/measure/restore/report sequence), one module per family of drills (:mod:`control`,
:mod:`hosts`, :mod:`trust`) and :mod:`catalog` (the names).
"""
