"""Replay the Dockerfile's install steps outside Docker, in a throwaway venv (no Docker engine needed).

Usage: python scripts/dockerfile_pip_steps.py WORKDIR [--dockerfile Dockerfile] [--stage builder]

Walks the instructions of one build stage in order. A local `COPY src... dest` copies from the repo into
WORKDIR/build/<the stage's WORKDIR>/dest. A `RUN` whose command runs `pip install` is executed with bash in
WORKDIR/build/<the stage's WORKDIR>, with WORKDIR/venv/bin first on PATH (RUN flags such as `--mount=type=cache` are
dropped; pip's own cache is used). An `ARG NAME=default` sets NAME for the later steps, as a build without
`--build-arg` would, unless NAME is already in the environment (so `RAG_EXTRAS=... dockerfile_pip_steps.py` acts as
`--build-arg RAG_EXTRAS=...`). Every other instruction (apt-get, `python -m venv`, ENV, ...) is skipped.
So the image's dependency list is installed exactly as its Dockerfile says, and cannot rot unnoticed.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments and blank lines dropped."""
    result: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.strip().partition(" ")
        result.append((keyword.upper(), rest.strip()))
        current = ""
    return result


def stage(steps: list[tuple[str, str]], name: str) -> list[tuple[str, str]]:
    """The instructions of the stage `FROM ... AS name`."""
    selected: list[tuple[str, str]] | None = None
    for keyword, rest in steps:
        if keyword == "FROM":
            if selected is not None:
                break
            if re.search(rf"\s+AS\s+{re.escape(name)}$", rest, flags=re.IGNORECASE):
                selected = []
            continue
        if selected is not None:
            selected.append((keyword, rest))
    if selected is None:
        raise SystemExit(f"no stage named {name!r} in the Dockerfile")
    return selected


def strip_flags(rest: str) -> str:
    """Drop leading `--flag=value` options of RUN/COPY."""
    while rest.startswith("--"):
        _, _, rest = rest.partition(" ")
        rest = rest.lstrip()
    return rest


def replay(dockerfile: Path, stage_name: str, workdir: Path) -> int:
    venv = workdir / "venv"
    build = workdir / "build"
    build.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONHOME", None)
    env.setdefault("PIP_QUIET", "1")  # pip errors still show; PIP_QUIET=0 in the environment for the full log
    container_workdir = "/"
    ran = 0
    for keyword, rest in stage(instructions(dockerfile.read_text()), stage_name):
        if keyword == "WORKDIR":
            container_workdir = rest
        elif keyword == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            value = shlex.split(default)[0] if default.strip() else ""
            if name.strip() not in os.environ:
                env[name.strip()] = value
                print(f"ARG {name.strip()}={value}", flush=True)
        elif keyword == "COPY" and "--from=" not in rest:
            *sources, dest = shlex.split(strip_flags(rest))
            target = build / os.path.relpath(os.path.join(container_workdir, dest), "/")
            for source in sources:
                origin = ROOT / source
                if origin.is_dir():
                    name = target if not dest.endswith("/") and len(sources) == 1 else target / origin.name
                    shutil.copytree(origin, name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    name = target / origin.name if dest.endswith("/") or len(sources) > 1 else target
                    name.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, name)
            print(f"COPY {' '.join(sources)} -> {target.relative_to(workdir)}", flush=True)
        elif keyword == "RUN" and "pip install" in rest:
            command = strip_flags(rest)
            print(f"RUN {command}", flush=True)
            cwd = build / os.path.relpath(container_workdir, "/")
            cwd.mkdir(parents=True, exist_ok=True)
            subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env, check=True)
            ran += 1
    if not ran:
        raise SystemExit(f"stage {stage_name!r} of {dockerfile} has no `pip install` step")
    return ran


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path, help="Empty folder: gets venv/ (must exist already) and build/.")
    parser.add_argument("--dockerfile", type=Path, default=ROOT / "Dockerfile")
    parser.add_argument("--stage", default="builder")
    args = parser.parse_args()
    if not (args.workdir / "venv" / "bin" / "python").exists():
        print(f"make the venv first: python3 -m venv {args.workdir / 'venv'}", file=sys.stderr)
        return 2
    ran = replay(args.dockerfile, args.stage, args.workdir.resolve())
    print(f"replayed {ran} pip install step(s) of stage {args.stage!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
