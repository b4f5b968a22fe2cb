"""Running things on this machine: the process chokepoint, machine facts, VMM launchers.

Everything that starts a process goes through :mod:`nestlab.runtime.proc`, so tests can substitute
one fake and the rest of the code never imports :mod:`subprocess`.
"""
