"""Pod images built on the outer machine: OCI images from a directory, and the lab's demo images.

Nothing here runs on the lab's nodes (the agent only pulls, through :mod:`nestlab.agent.registry`,
which this package also uses to push): it is kept out of ``nestlab.agent`` so the agent's package
holds only what the hosts run.
"""
