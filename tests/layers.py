"""The package's layers, and a checker that reads every module's imports (lazy ones too) from its source.

Lowest layer first.  A module may import its own layer or a lower one, never a higher one; the packages of
one layer may import each other only without forming a cycle.  Every module must belong to a layer.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("types", ("t2i.types", "t2i.limits", "t2i.text", "t2i.userfiles", "t2i.cancel")),
    ("helpers", ("t2i.grid", "t2i.metadata", "t2i.outputs", "t2i.licences", "t2i.quiet")),
    ("engine", ("t2i.world", "t2i.presample", "t2i.compose", "t2i.render", "t2i.llm")),
    ("models", ("t2i.registry", "t2i.backends", "t2i.paella", "t2i.unet")),
    ("pipeline", ("t2i.stages", "t2i.generate", "t2i.replay", "t2i.pipeline_options", "t2i.prompt_class",
                  "t2i.composition_plan", "t2i.pipeline")),
    ("uses", ("t2i.evaluation", "t2i.train", "t2i.distill")),
    ("product", ("t2i.cli", "t2i.serve", "t2i.scale")),
    ("api", ("t2i",)),  # the package's own __init__ (only it): the Python API may gather from every layer
)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. "t2i.render.excite"
    target: str  # the imported module (or package), e.g. "t2i.world.vocab"
    line: int


def module_name(root: Path, path: Path) -> str:
    """`root/t2i/world/vocab.py` -> "t2i.world.vocab"; a package's __init__ -> the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(root: Path, path: Path, modules: set[str]) -> list[Import]:
    """Every import of a `t2i` module in `path`, at any depth (function-level and TYPE_CHECKING ones too)."""
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: up (level - 1) packages from this module's package
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            # `from t2i.cli import train` imports the module t2i.cli.train when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        out += [Import(name, t, node.lineno) for t in targets if t == "t2i" or t.startswith("t2i.")]
    return out


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the longest prefix that names `module`'s layer, or None."""
    best, best_len = None, -1
    for k, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = "." in prefix and module.startswith(prefix + ".")  # "t2i" names the root module alone
            if (module == prefix or inside) and len(prefix) > best_len:
                best, best_len = k, len(prefix)
    return best


def package_of(module: str) -> str:
    """The unit whose cycles count: t2i's sub-package or top-level module ("t2i.world", "t2i.generate")."""
    return ".".join(module.split(".")[:2])


def check_layers(root: Path) -> list[str]:
    """Every violation in the `t2i` package under `root` (the folder holding t2i/): modules without a layer,
    imports of a higher layer, and import cycles between packages of one layer."""
    files = sorted((root / "t2i").rglob("*.py"))
    modules = {module_name(root, f) for f in files}
    problems = [f"{m}: no layer (add it to tests/layers.py LAYERS)" for m in sorted(modules)
                if layer_of(m) is None]
    edges: dict[str, set[str]] = {}
    for f in files:
        for imp in imports_of(root, f, modules):
            src, dst = layer_of(imp.source), layer_of(imp.target)
            if src is None or dst is None:
                if dst is None and imp.target not in modules:
                    problems.append(f"{imp.source}:{imp.line} imports {imp.target}, which does not exist")
                continue
            if dst > src:
                problems.append(f"{imp.source}:{imp.line} ({LAYERS[src][0]}) imports {imp.target} "
                                f"({LAYERS[dst][0]}, a higher layer)")
            a, b = package_of(imp.source), package_of(imp.target)
            if dst == src and a != b:
                edges.setdefault(a, set()).add(b)
    problems += [f"import cycle between packages of one layer: {' -> '.join(c)}" for c in _cycles(edges)]
    return problems


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path back to its start) for each package on a cycle, found by depth-first search."""
    found, seen = [], set()
    for start in sorted(edges):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(edges.get(node, ())):
                if nxt == start:
                    cycle = path + [start]
                    if frozenset(cycle) not in seen:
                        seen.add(frozenset(cycle))
                        found.append(cycle)
                elif nxt not in path:
                    stack.append((nxt, path + [nxt]))
    return found
