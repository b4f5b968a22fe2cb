"""The ``nestlab`` command's commands and groups, a module each: the lab's lifecycle (``lab``), single
nodes (``nodes``, ``host``), users, namespaces, audit, images, the dashboard, exercises and drills.
:mod:`nestlab.cli` names them in one table and imports a module only when its command runs. Each
module stays thin: it parses its arguments and calls one library function."""
