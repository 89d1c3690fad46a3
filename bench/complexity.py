"""The house's shape in numbers, against the cleanup's targets (issue 15):

    python bench/complexity.py [--root planner] [--no-duplicates] [--list N]

Prints the average cyclomatic complexity over planner/ (radon's `cc -a` when radon is installed,
else the same McCabe count from an ast walk), the functions longer than 80 lines, the CLI modules
longer than 200 lines, the import cycles among planner modules (the static import graph: every
`import`, at the top or inside a function, except those under `if TYPE_CHECKING:`) and, when the
`duplicates` tool is on PATH, its pair count at the repo root; then each target with pass/fail.
radon is a dev-only tool (`pip install radon`); nothing here is imported by memfit.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_AVERAGE_CC = 3.5
MAX_FUNCTION_LINES = 80
MAX_CLI_MODULE_LINES = 200
MAX_DUPLICATE_PAIRS = 11  # the count at the start of the cleanup day


# --------------------------------------------------------------------------- McCabe, as radon counts it

@dataclass(frozen=True)
class Block:
    """A function, method or class with its complexity (radon's blocks: closures are not blocks)."""

    name: str
    complexity: float


def _decisions(node: ast.AST) -> int:
    """Decision points in `node` and below, without entering nested functions (radon's rules:
    if/elif/ternary +1, each loop +1 (+1 for its else), each except +1 (+1 for try's else), each
    `and`/`or` operand after the first +1, each comprehension +1 per `for` and per `if`, assert +1
    (and nothing inside it),
    match: one per case but the wildcard)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return 0
    n = 0
    if isinstance(node, ast.Assert):
        return 1  # radon does not look inside an assert
    if isinstance(node, ast.Try):
        n += len(node.handlers) + bool(node.orelse)
    elif isinstance(node, ast.BoolOp):
        n += len(node.values) - 1
    elif isinstance(node, (ast.If, ast.IfExp)):
        n += 1
    elif isinstance(node, ast.Match):
        wildcard = any(getattr(case.pattern, "pattern", False) is None for case in node.cases)
        n += max(0, len(node.cases) - wildcard)
    elif isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
        n += 1 + bool(node.orelse)
    elif isinstance(node, ast.comprehension):
        n += 1 + len(node.ifs)
    return n + sum(_decisions(child) for child in ast.iter_child_nodes(node))


def _function_cc(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    return 1 + sum(_decisions(stmt) for stmt in node.body)


def _class_blocks(node: ast.ClassDef) -> list[Block]:
    """The class (radon: the mean of its methods' complexity, plus one with several methods) and
    its methods."""
    methods = [Block(f"{node.name}.{f.name}", _function_cc(f)) for f in _direct_functions(node.body)]
    real = 1 + sum(_decisions(stmt) for stmt in node.body) + sum(m.complexity - 1 for m in methods) + len(methods)
    cls = int(real / len(methods)) + (len(methods) > 1) if methods else real
    return [Block(node.name, cls), *methods]


def _direct_functions(body: list[ast.stmt]) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Functions defined at this level (also inside if/try at this level), not inside other functions."""
    out: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    for stmt in body:
        for node in _walk_outside_functions(stmt):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append(node)
    return out


def _walk_outside_functions(node: ast.AST):
    yield node
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return
    for child in ast.iter_child_nodes(node):
        yield from _walk_outside_functions(child)


def ast_blocks(tree: ast.Module) -> list[Block]:
    blocks = [Block(f.name, _function_cc(f)) for f in _direct_functions(tree.body)]
    for stmt in tree.body:
        for node in _walk_outside_functions(stmt):
            if isinstance(node, ast.ClassDef):
                blocks += _class_blocks(node)
    return blocks


def radon_blocks(source: str) -> list[Block] | None:
    try:
        from radon.complexity import cc_visit
    except ImportError:
        return None
    return [Block(b.fullname, b.complexity) for b in cc_visit(source)]


def average_complexity(files: list[Path], use_radon: bool) -> tuple[float, int, str]:
    blocks: list[Block] = []
    tool = "radon"
    for path in files:
        source = path.read_text(encoding="utf-8")
        found = radon_blocks(source) if use_radon else None
        if found is None:
            tool = "ast walk"
            found = ast_blocks(ast.parse(source))
        blocks += found
    return (sum(b.complexity for b in blocks) / len(blocks) if blocks else 0.0), len(blocks), tool


# --------------------------------------------------------------------------- lengths

def long_functions(files: list[Path], limit: int) -> list[tuple[str, int]]:
    """Every function or method (nested ones too) longer than `limit` lines, def line to last line."""
    out = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    out.append((f"{_rel(path)}:{node.lineno} {node.name}", length))
    return sorted(out, key=lambda x: -x[1])


def long_modules(folder: Path, limit: int) -> list[tuple[str, int]]:
    out = [(_rel(p), len(p.read_text(encoding="utf-8").splitlines())) for p in sorted(folder.glob("*.py"))]
    return sorted([x for x in out if x[1] > limit], key=lambda x: -x[1])


# --------------------------------------------------------------------------- import cycles

def module_name(path: Path, package_root: Path) -> str:
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of import nodes under `if TYPE_CHECKING:` (they never run)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def _imported(node: ast.Import | ast.ImportFrom, here: str, is_package: bool) -> list[str]:
    """The modules an import statement names, absolute (`from . import x` names package.x)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = here if is_package else here.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    target = node.module or ""
    if node.level:
        target = f"{base}.{target}" if target else base
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def import_graph(package_root: Path) -> dict[str, set[str]]:
    modules = {module_name(p, package_root): p for p in package_root.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_only(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skip:
                names = _imported(node, name, path.name == "__init__.py")
                graph[name] |= {t for t in names if t in modules and t != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


# --------------------------------------------------------------------------- duplicates

def duplicate_pairs(seconds: int) -> int | None:
    """The `duplicates` tool's pair count at the repo root, or None when it is not installed."""
    tool = shutil.which("duplicates")
    if tool is None:
        return None
    out = subprocess.run([tool, "--seconds", str(seconds), "--most", "1"], cwd=ROOT, capture_output=True,
                         text=True, check=False).stdout
    m = re.match(r"(\d+) pairs?", out)
    return int(m.group(1)) if m else 0


# --------------------------------------------------------------------------- report

def _rel(path: Path) -> str:
    return str(path.resolve().relative_to(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="planner", help="the package to measure (default: planner)")
    ap.add_argument("--ast", action="store_true", help="count with the ast walk even when radon is installed")
    ap.add_argument("--no-duplicates", action="store_true", help="skip the `duplicates` run")
    ap.add_argument("--seconds", type=int, default=120, help="time given to `duplicates`")
    ap.add_argument("--list", type=int, default=10, help="how many long functions to list")
    args = ap.parse_args()

    package = (ROOT / args.root).resolve()
    files = sorted(package.rglob("*.py"))
    avg, n_blocks, tool = average_complexity(files, use_radon=not args.ast)
    long_fns = long_functions(files, MAX_FUNCTION_LINES)
    long_cli = long_modules(package / "cli", MAX_CLI_MODULE_LINES)
    cycles = import_cycles(import_graph(package))
    dups = None if args.no_duplicates else duplicate_pairs(args.seconds)

    print(f"average cyclomatic complexity over {args.root}/: {avg:.2f} ({n_blocks} blocks, {tool})")
    print(f"functions over {MAX_FUNCTION_LINES} lines: {len(long_fns)}")
    for name, length in long_fns[:args.list]:
        print(f"  {length:4d}  {name}")
    print(f"CLI modules over {MAX_CLI_MODULE_LINES} lines: {len(long_cli)}")
    for name, length in long_cli:
        print(f"  {length:4d}  {name}")
    print(f"import cycles among {args.root} modules: {len(cycles)}")
    for cycle in cycles:
        print(f"  {' <-> '.join(cycle)}")
    if dups is not None:
        print(f"duplicates pairs (repo root): {dups}")

    rows = [("average cyclomatic complexity", f"{avg:.2f}", f"<= {MAX_AVERAGE_CC}", avg <= MAX_AVERAGE_CC),
            (f"functions over {MAX_FUNCTION_LINES} lines", str(len(long_fns)), "0", not long_fns),
            (f"CLI modules over {MAX_CLI_MODULE_LINES} lines", str(len(long_cli)), "0", not long_cli),
            ("import cycles", str(len(cycles)), "0", not cycles)]
    if dups is not None:
        rows.append(("duplicates pairs", str(dups), f"<= {MAX_DUPLICATE_PAIRS}", dups <= MAX_DUPLICATE_PAIRS))
    print()
    print(f"{'target':32} {'now':>6}  {'goal':>6}  result")
    for what, now, goal, ok in rows:
        print(f"{what:32} {now:>6}  {goal:>6}  {'pass' if ok else 'FAIL'}")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
