"""Print the requirements of one image role, one per line, from pyproject.toml.

``dagster`` (the webserver, daemon, user-code server and every run) takes all of
``[project.dependencies]``; ``gateway`` takes only the distributions named in
``[tool.crypto-data-platform.images].gateway``, with the pins of ``[project.dependencies]``, so a
pin lives in one place. Used by the Dockerfile: ``python3 requirements.py ROLE [PYPROJECT]``.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    """A distribution name in PEP 503's normal form."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(role: str, pyproject: Path) -> list[str]:
    """The requirement lines of ``role``; a gateway name missing from the dependencies raises."""
    with pyproject.open("rb") as f:
        data = tomllib.load(f)
    dependencies: list[str] = data["project"]["dependencies"]
    if role == "dagster":
        return dependencies
    if role != "gateway":
        raise SystemExit(f"unknown image role {role!r}: dagster or gateway")
    wanted = {canonical(n) for n in data["tool"]["crypto-data-platform"]["images"]["gateway"]}
    by_name = {canonical(NAME.match(d).group(1)): d for d in dependencies}  # type: ignore[union-attr]
    missing = sorted(wanted - by_name.keys())
    if missing:
        raise SystemExit(f"gateway packages not in [project.dependencies]: {', '.join(missing)}")
    return [by_name[n] for n in sorted(wanted)]


if __name__ == "__main__":
    path = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("pyproject.toml")
    print("\n".join(requirements(sys.argv[1], path)))
