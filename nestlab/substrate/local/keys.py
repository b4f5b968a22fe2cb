"""SSH keys of a lab: the lab's client key pair and one host key per node, all made by ssh-keygen.

Host keys are generated on the outer machine (not by the node at first boot) so the lab's
known_hosts can be written before any node answers: no trust-on-first-use, no prompts.
"""

from __future__ import annotations

from pathlib import Path

from nestlab.runtime import proc

TIMEOUT_S = 30.0  # ed25519 key generation is instant


def ensure_key(run: proc.Runner, private: Path, comment: str) -> str:
    """Create an ed25519 key pair at ``private`` (0600) unless present; return the public line."""
    public = private.with_name(private.name + ".pub")
    if not (private.is_file() and public.is_file()):
        private.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in (private, public):
            stale.unlink(missing_ok=True)
        run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private)],
            timeout=TIMEOUT_S,
        )
    private.chmod(0o600)
    return public.read_text(encoding="ascii").strip()
