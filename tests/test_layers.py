"""The package's floors: a module imports only from its own floor or below, and no import runs in a
circle (lyricgen/__init__.py draws the floors). Static: the imports are read, nothing is run."""
import ast
from pathlib import Path

import lyricgen

ROOT = Path(lyricgen.__file__).parent

# lowest first; a name covers the module and, for a package, everything in it
FLOORS = [
    ("errors", "_version", "fileio", "options", "runfiles", "text"),
    ("config", "runtime"),
    ("model",),
    ("fitted",),
    ("checkpoint",),
    ("scoring",),
    ("training", "writing"),
    ("serving",),
    ("cli", "__main__", ""),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The lyricgen modules a file imports (relative or absolute), as dotted names under lyricgen."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [p for p in package if p]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                found.add(".".join(base + node.module.split(".")))
            else:
                found.update(".".join(base + [a.name]) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lyricgen."):
            found.add(node.module.removeprefix("lyricgen."))
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("lyricgen.") for a in node.names if a.name.startswith("lyricgen."))
    return found


def floor(name: str) -> int:
    for i, names in enumerate(FLOORS):
        for n in names:
            if name == n or (n and name.startswith(n + ".")):
                return i
    raise AssertionError(f"lyricgen.{name} is on no floor: add it to FLOORS (and to lyricgen/__init__.py)")


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: {d for d in imports(path) if d in files or any(f.startswith(d + ".") for f in files)}
            for name, path in files.items()}


def test_no_module_imports_a_higher_floor():
    upward = [f"lyricgen.{m or '__init__'} imports lyricgen.{d}" for m, deps in graph().items() for d in deps
              if floor(d) > floor(m)]
    assert upward == []


def test_no_import_cycle():
    g = graph()
    state, cycles = {}, []

    def visit(node, path):
        state[node] = 1
        for d in sorted(g[node] & g.keys()):
            if state.get(d) == 1:
                cycles.append(" -> ".join(path[path.index(d):] + [d]))
            elif d not in state:
                visit(d, path + [d])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_reader_finds_relative_absolute_and_function_level_imports():
    g = graph()
    assert "serving.http" in g["serving.openai_api"]  # from .http import ...
    assert "serving.openai_api" in g["serving.app"]  # inside create_app
    assert "writing" in g[""]  # the package's lazy __getattr__: from .writing import lyricist
    assert floor("serving.http") > floor("writing.lyricist") > floor("checkpoint") > floor("fitted.ngram")
