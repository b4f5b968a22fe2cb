"""The ``nestlab`` command's groups beyond the lab lifecycle (users, namespaces, audit, images), one
module each; :mod:`nestlab.cli` registers them. Each module stays thin: it parses its arguments and
calls one library function, as the lifecycle commands do."""
