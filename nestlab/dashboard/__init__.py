"""``nestlab dashboard``: the lab's picture in a browser, as the vSphere Client shows a cluster.

Read-only. Layers, each importable on its own:

- :mod:`.store`: the objects one reader of the API sees, kept current by watch events (no I/O);
- :mod:`.model`: pure functions from those objects and the lab's facts to the views' rows;
- :mod:`.render`: the jinja2 templates (package data under ``templates/``), pure;
- :mod:`.feed`: the watches (list, then watch, resumed) that fill a store, over the API client;
- :mod:`.labfacts`: what the API does not hold: node power states, API health, pod kernels;
- :mod:`.sessions` and :mod:`.app`: logins with the lab's credentials and the aiohttp application.
"""
