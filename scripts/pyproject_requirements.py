"""Print the requirements of this project's pyproject.toml, one per line: its dependencies plus the given extras.

Usage: python pyproject_requirements.py [--pyproject pyproject.toml] [EXTRA[,EXTRA...] ...]

Self-references (`all = ["ragstack[pgvector,...]"]`) are expanded, so `all` works. The Dockerfile installs these
before the source is copied, so its slowest layer depends on pyproject.toml alone.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

_SELF = re.compile(r"^\s*(?P<name>[A-Za-z0-9._-]+)\s*\[(?P<extras>[^\]]*)\]\s*$")


def requirements(project: dict, extras: list[str]) -> list[str]:
    """The dependencies and those of `extras`, self-references expanded, duplicates dropped, order kept."""
    name = project["name"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    result: list[str] = list(project.get("dependencies", []))
    pending = list(extras)
    seen: set[str] = set()
    while pending:
        extra = pending.pop(0).strip()
        if not extra or extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"unknown extra {extra!r}; pyproject.toml declares {sorted(optional)}")
        seen.add(extra)
        for requirement in optional[extra]:
            match = _SELF.match(requirement)
            if match and match.group("name") == name:
                pending.extend(match.group("extras").split(","))
            elif requirement not in result:
                result.append(requirement)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extras", nargs="*", help="Extras, space- or comma-separated (e.g. pgvector,redis).")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args()
    project = tomllib.loads(args.pyproject.read_text())["project"]
    extras = [extra for argument in args.extras for extra in argument.split(",")]
    sys.stdout.write("".join(f"{line}\n" for line in requirements(project, extras)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
