"""Leader-elected controllers of the control plane: the scheduler (DRS placement) and node lifecycle."""
