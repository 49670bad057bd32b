"""The house rules that keep the architecture visible: every module imports, and no import cycles."""

from __future__ import annotations

import ast
import importlib
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


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
        if name.endswith(("llamacpp_worker", "__main__")):
            continue  # a process of its own (it would take over fd 1), or a program (it would run)
        importlib.import_module(name)


def _deps(name: str, p: pathlib.Path, mods: dict[str, pathlib.Path]) -> set[str]:
    """Every module ``name`` imports: at the top, inside functions, and through
    ``importlib.import_module`` (a literal name, or an f-string: every module under its literal
    prefix, as ``importlib.import_module(f"tui.cli.commands.{name}")`` may load any command)."""
    pkg = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()

    def add(dotted: str) -> None:
        while dotted and dotted not in mods:  # ``import a.b.c`` of a name inside a module
            dotted = dotted.rpartition(".")[0]
        if dotted:
            out.add(dotted)

    for n in ast.walk(ast.parse(p.read_text())):
        if isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - n.level + 1] + ([base] if base else []))
            for a in n.names:
                full = f"{base}.{a.name}"
                add(full if full in mods else base)
        elif isinstance(n, ast.Import):
            for a in n.names:
                add(a.name)
        elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "import_module"
              and n.args):  # fmt: skip
            arg = n.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                add(arg.value)
            elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                prefix = arg.values[0].value
                out.update(m for m in mods if m.startswith(prefix) and m != prefix.rstrip("."))
    out.discard(name)
    return {d for d in out if mods[d].name != "__init__.py"}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    seen: set[str] = set()
    stack: list[str] = []

    def dfs(u: str) -> list[str] | None:
        seen.add(u)
        stack.append(u)
        for v in sorted(graph[u]):
            if v in stack:
                return stack[stack.index(v) :] + [v]
            if v not in seen and (found := dfs(v)):
                return found
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in seen and (found := dfs(m)):
            return found
    return None


def test_no_import_cycles_between_modules():
    mods = _modules()
    graph = {m: _deps(m, p, mods) for m, p in mods.items()}
    found = _cycle(graph)
    assert found is None, "import cycle: " + " -> ".join(found or [])


def test_the_cycle_check_sees_imports_in_functions_and_importlib(tmp_path):
    """The two cycles it once missed, in miniature: one side imports inside a function, the other
    through ``importlib.import_module`` with an f-string."""
    (tmp_path / "pkg").mkdir()
    a = tmp_path / "pkg" / "a.py"
    b = tmp_path / "pkg" / "b.py"
    a.write_text("import importlib\ndef f(n):\n    return importlib.import_module(f'pkg.{n}')\n")
    b.write_text("def g():\n    from pkg import a\n    return a\n")
    mods = {"pkg.a": a, "pkg.b": b}
    graph = {m: _deps(m, p, mods) for m, p in mods.items()}
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert _cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]


def _rooms(*tops: str) -> list[pathlib.Path]:
    dirs = [ROOT / top for top in tops or ("backends", "tui")]
    return dirs + [p for top in dirs for p in top.rglob("*") if p.is_dir() and any(p.glob("*.py"))]


def test_every_folder_has_rooms_of_at_most_twelve_modules():
    """A reader finds where a thing lives from folder names: no room holds more than ~12 modules,
    the tests' and the benchmarks' included."""
    for folder in _rooms("backends", "tui", "tests", "benchmarks"):
        modules = [p for p in folder.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
        assert len(modules) <= 12, f"{folder.relative_to(ROOT)} holds {len(modules)} modules"


def test_the_readme_tree_names_every_room_and_module():
    """README's "How it is built" is the map a newcomer reads: every room of backends/ and tui/ and
    every module in them is named there (widgets/ and commands/ hold one widget or subcommand a
    module, and say so instead)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tree = readme.split("## How it is built", 1)[1].split("```")[1]
    missing = []
    for folder in _rooms():
        if folder.name not in ("backends", "tui") and f"{folder.name}/" not in tree:
            missing.append(f"{folder.relative_to(ROOT)}/")
        if folder.name in ("widgets", "commands"):
            continue
        for p in folder.glob("*.py"):
            if p.name not in ("__init__.py", "__main__.py") and not re.search(rf"\b{p.stem}\b", tree):
                missing.append(str(p.relative_to(ROOT)))
    assert not missing, f'README\'s "How it is built" does not name: {", ".join(sorted(missing))}'


def test_the_readme_tree_names_every_room_of_tests_and_benchmarks():
    """Under its own entry of the tree (``engines/`` under backends/ says nothing of tests/engines/)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tree = readme.split("## How it is built", 1)[1].split("```")[1].splitlines()
    missing = []
    for top in ("tests", "benchmarks"):
        start = next(i for i, line in enumerate(tree) if line.startswith(f"{top}/"))
        end = next((i for i in range(start + 1, len(tree)) if tree[i][:1].strip()), len(tree))
        entry = "\n".join(tree[start:end])
        missing += [f"{top}/{p.name}/" for p in _rooms(top)[1:] if f"{p.name}/" not in entry]
    assert not missing, f'README\'s "How it is built" does not name: {", ".join(sorted(missing))}'
