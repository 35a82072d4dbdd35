"""Print the requirements of the project, read from its own pyproject.toml, one per line.

Used by docker/build.sh (to fill the host wheelhouse) and by the Dockerfiles' deps stage (to
install the dependencies in a layer of their own before the project's code), so both follow the
project's dependency list as it is, never a hand-written copy of it.

    python3 docker/pyproject_requirements.py pyproject.toml [--extras a,b] [--build-system]

--extras adds the optional-dependency groups named (a group that names the project itself,
e.g. ``noa-core[test]``, is expanded in place). --build-system prints `build-system.requires`
instead, what building the project's wheel offline needs. Standard library only
(Python >= 3.11 for tomllib): it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(pyproject: dict, extras: list[str]) -> list[str]:
    """The project's dependencies plus those of ``extras``, self-references expanded."""
    project = pyproject.get("project", {})
    me = _canonical(project.get("name", ""))
    groups = project.get("optional-dependencies", {})
    out: list[str] = []
    seen_groups: set[str] = set()

    def add(reqs: list[str]) -> None:
        for req in reqs:
            m = _NAME.match(req)
            if m and _canonical(m.group(1)) == me:
                for group in (m.group(2) or "").split(","):
                    expand(group.strip())
            elif req not in out:
                out.append(req)

    def expand(group: str) -> None:
        if not group or group in seen_groups:
            return
        if group not in groups:
            raise SystemExit(f"pyproject_requirements: no optional-dependencies group {group!r} "
                             f"(known: {', '.join(sorted(groups)) or 'none'})")
        seen_groups.add(group)
        add(groups[group])

    add(list(project.get("dependencies", [])))
    for group in extras:
        expand(group)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pyproject", type=Path)
    p.add_argument("--extras", default="", help="comma-separated optional-dependency groups")
    p.add_argument("--build-system", action="store_true",
                   help="print build-system.requires instead of the runtime requirements")
    a = p.parse_args(argv)
    data = tomllib.loads(a.pyproject.read_text(encoding="utf-8"))
    if a.build_system:
        reqs = list(data.get("build-system", {}).get("requires", ["setuptools", "wheel"]))
    else:
        reqs = requirements(data, [e.strip() for e in a.extras.split(",") if e.strip()])
    sys.stdout.write("".join(f"{r}\n" for r in reqs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
