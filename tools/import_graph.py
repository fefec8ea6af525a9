"""Print the server's import graph between capabilities, and any cycles.

    .venv/bin/python tools/import_graph.py [PACKAGE]

Uses grimp (installed with import-linter). An arrow ``a -> b`` means some module of ``a`` imports some module
of ``b``, at the top of the module or inside a function; cycles are listed between capabilities and between
modules. pyproject.toml's import-linter contracts state which arrows may exist.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable

import grimp


def capability(module: str, package: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else package


def strongly_connected(nodes: Iterable[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively (graphs of a few hundred modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def main(package: str = "server") -> None:
    graph = grimp.build_graph(package)
    modules: dict[str, set[str]] = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    capabilities: dict[str, set[str]] = {}
    for module, imported in modules.items():
        source = capability(module, package)
        for target in imported:
            if capability(target, package) != source:
                capabilities.setdefault(source, set()).add(capability(target, package))
    print(f"{package}: {len(modules)} modules; capability -> capabilities it imports")
    for source in sorted(capabilities):
        print(f"  {source} -> {', '.join(sorted(t.split('.')[-1] for t in capabilities[source]))}")
    cycles = strongly_connected(capabilities, capabilities)
    print("capability cycles:", "none" if not cycles else "")
    for cycle in cycles:
        print("  " + " <-> ".join(cycle))
    module_cycles = strongly_connected(modules, modules)
    print("module cycles:", "none" if not module_cycles else "")
    for cycle in module_cycles:
        print("  " + " <-> ".join(cycle))


if __name__ == "__main__":
    main(*sys.argv[1:])
