"""The code's layout: no import cycles (imports inside functions included), console scripts that resolve."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pretrain", "experiments")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its source (functions included)."""
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                # ``from pkg import sub`` imports the submodule when there is one
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names}
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    graph = import_graph()
    assert {"pretrain.greedy", "pretrain.layers.rbm", "pretrain.checkpoint"} <= set(graph)
    assert "pretrain.layers.base" in graph["pretrain.layers.rbm"]  # relative imports are resolved
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_lower_layers_do_not_import_the_trainer_or_the_commands():
    graph = import_graph()
    commands = {"pretrain.stack", "pretrain.finetune", "pretrain.autoencoder", "pretrain.doctor"}
    trainers = {"pretrain.greedy", "pretrain.finetuning", "pretrain.deep_autoencoder", "pretrain.classifier"}
    nets_and_storage = {"pretrain.mlp", "pretrain.init", "pretrain.checkpoint", "pretrain.data"}
    nets_and_storage |= {m for m in graph if m.startswith("pretrain.layers")}
    for module in nets_and_storage:
        found = reachable(graph, module) & trainers
        assert not found, f"{module} imports a trainer: {found}"
    for module, deps in graph.items():
        if module.startswith("pretrain.") and module not in commands:
            assert not deps & commands, f"{module} imports a command: {deps & commands}"


def test_console_scripts_resolve_to_the_commands_main():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"pretrain-stack", "pretrain-finetune", "pretrain-autoencoder", "pretrain-doctor"}
    for target in scripts.values():
        module, _, func = target.partition(":")
        assert callable(getattr(importlib.import_module(module), func))
