#!/usr/bin/python3
"""Check an installed nestlab-pod-kernel directory against its MANIFEST.json (nestlab-manifest/1).

Run on lab hosts by roles/pod_kernel (ansible.builtin.script), so it uses the standard library only:
hosts have python3 but no nestlab at this point. Same rules as nestlab.trust.manifest.check_manifest:
every listed file present with its sha256, no other file besides MANIFEST.json, no symlinks.
Prints one line per problem naming the file and exits 1; prints a summary and exits 0 when clean.
"""

import hashlib
import json
import re
import sys
from pathlib import Path

FORMAT = "nestlab-manifest/1"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def problems(root: Path) -> list[str]:
    try:
        raw = json.loads((root / "MANIFEST.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{root / 'MANIFEST.json'}: unreadable manifest ({exc})"]
    files = raw.get("files") if isinstance(raw, dict) else None
    if not isinstance(files, dict) or not files or raw.get("format") != FORMAT:
        return [f"{root / 'MANIFEST.json'}: not a {FORMAT} manifest with a files map"]
    found = []
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            found.append(f"{path}: is a symlink; the package installs regular files only")
        elif path.is_file() and name != "MANIFEST.json":
            if name not in files:
                found.append(f"{path}: unexpected file, not in MANIFEST.json")
            elif not isinstance(files[name], str) or not HEX64.match(files[name]):
                found.append(f"{path}: MANIFEST.json has no valid sha256 for it")
            elif digest(path) != files[name]:
                found.append(f"{path}: sha256 {digest(path)} differs from MANIFEST.json ({files[name]})")
    for name in sorted(files):
        if not (root / name).is_file():
            found.append(f"{root / name}: missing (listed in MANIFEST.json)")
    return found


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: check-manifest.py DIRECTORY", file=sys.stderr)
        return 2
    root = Path(sys.argv[1])
    found = problems(root)
    for line in found:
        print(line)
    if not found:
        print(f"{root}: every file matches MANIFEST.json")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
