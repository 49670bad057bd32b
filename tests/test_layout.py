"""The house rules that keep the architecture visible: every module imports, and no import cycles."""

from __future__ import annotations

import ast
import importlib
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _modules() -> dict[str, pathlib.Path]:
    mods = {}
    for top in ("backends", "tui"):
        for p in (ROOT / top).rglob("*.py"):
            mods[".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = p
    return mods


def test_every_public_name_of_backends_resolves():
    import backends

    for name in backends.__all__:
        assert getattr(backends, name) is not None, name


def test_every_module_imports():
    for name in _modules():
        if name.endswith("llamacpp_worker"):
            continue  # a process of its own: importing it would take over fd 1
        importlib.import_module(name)


def test_no_import_cycles_between_modules():
    mods = _modules()

    def deps(name: str, p: pathlib.Path) -> set[str]:
        pkg = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
        out = set()
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.ImportFrom):
                base = n.module or ""
                if n.level:
                    parts = pkg.split(".")
                    base = ".".join(parts[: len(parts) - n.level + 1] + ([base] if base else []))
                for a in n.names:
                    for c in (f"{base}.{a.name}", base):
                        if c in mods:
                            out.add(c)
                            break
        out.discard(name)
        return {d for d in out if mods[d].name != "__init__.py"}

    graph = {m: deps(m, p) for m, p in mods.items()}
    seen: set[str] = set()
    stack: list[str] = []

    def dfs(u: str) -> None:
        seen.add(u)
        stack.append(u)
        for v in sorted(graph[u]):
            assert v not in stack, "import cycle: " + " -> ".join(stack[stack.index(v) :] + [v])
            if v not in seen:
                dfs(v)
        stack.pop()

    for m in sorted(graph):
        if m not in seen:
            dfs(m)
