"""The node agent (the Spherelet): registers its Node, heartbeats, and runs pods as microVMs."""
