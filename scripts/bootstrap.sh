#!/usr/bin/env bash
# Install everything nestlab needs on a Debian 12 machine: the system packages listed in
# scripts/apt-packages.txt and a Python venv in .venv with the project and its dev groups.
# Safe to re-run: it installs only what is missing and reinstalls the venv only when
# pyproject.toml changed. Needs root for apt (it says so when it is not root).
set -euo pipefail
cd "$(dirname "$0")/.."

want=()
while read -r pkg; do
  [[ -z "$pkg" ]] && continue
  want+=("$pkg")
done < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' scripts/apt-packages.txt)

missing=()
for pkg in "${want[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "bootstrap: missing system packages: ${missing[*]}" >&2
    echo "bootstrap: run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "bootstrap: installing ${#missing[@]} system packages: ${missing[*]}"
  # Packages such as etcd-server would start their daemon on the outer machine; nestlab starts
  # its own processes, so forbid service starts for the duration of the install.
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 0755 "$policy"; made_policy=1
  fi
  trap '[[ $made_policy -eq 1 ]] && rm -f "$policy"' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
stamp=.venv/.nestlab-stamp
digest=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ ! -x .venv/bin/python || "$(cat "$stamp" 2>/dev/null)" != "$digest" ]]; then
  echo "bootstrap: preparing .venv"
  [[ -x .venv/bin/python ]] || "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade 'pip>=25.1'
  .venv/bin/python -m pip install -q -e '.[outer,apiserver]' --group dev
  echo "$digest" > "$stamp"
fi
