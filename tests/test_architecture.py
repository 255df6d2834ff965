"""The architecture as the code has it: the project's packages import one another without a circle (data and
calls flow one way: ingest -> Kafka -> job -> sinks -> dashboard, all on the shared `twitchcrement` package)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

from twitchcrement import PROJECT_ROOT

PACKAGES = ("twitchcrement", "ingest", "jobs", "dashboard", "bench", "services")


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Each module of the packages and the project modules it imports: every import statement counts, also those
    only for type checking or inside a function (a circle put off to run time is still a circle in the design)."""
    modules = {}
    for package in packages:
        for path in (root / package).rglob("*.py"):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path

    def project_module(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported |= {project_module(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from package import module` imports the module; `from module import name`, the module.
                imported |= {project_module(f"{node.module}.{alias.name}") for alias in node.names}
        graph[name] = {m for m in imported if m is not None and m != name}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def test_the_packages_import_one_another_without_a_circle() -> None:
    graph = import_graph(PROJECT_ROOT, PACKAGES)
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100  # the whole project was read
    assert "ingest.metrics" in graph["ingest.__main__"] and "twitchcrement.config" in graph["jobs.spam_detector"]
    assert cycle(graph) is None, " -> ".join(cycle(graph) or [])


def test_a_circle_through_a_type_checking_import_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "reader.py").write_text("from pkg import metrics\n")
    (package / "metrics.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.reader import Reader\n"
    )
    assert sorted(cycle(import_graph(tmp_path, ("pkg",))) or []) == ["pkg.metrics", "pkg.metrics", "pkg.reader"]
