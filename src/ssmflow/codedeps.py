"""The source files a command runs, derived from the code: the static import closure.

Snakemake does not track a Python package that a rule's command imports, so each rule
lists the package files its own command runs as inputs. `closure(module)` reads the
module's source (never imports it), follows every `import` / `from ... import` of a
module in the same top-level package or in ssmflow (at module level and inside functions:
a lazy import is still code the command runs), and includes each imported module's
parent packages (their `__init__.py` runs on import). Dynamic imports (`importlib`) are
not followed: the spine uses them only to dispatch to a study's stage module, which the
rule then names explicitly.

Example:
    closure("ssmflow.studies.dynamics.figures")  # [.../ssmflow/__init__.py, .../plots.py, ...]

`loaded_source_digest()` digests the other way round: the ssmflow modules a process has
imported (what ran), for checkpoints and for the provenance of the stores it writes.
"""

from __future__ import annotations

import ast
import functools
import importlib.machinery
import importlib.util
from pathlib import Path


@functools.cache
def module_file(name: str) -> Path | None:
    """The source file of module `name` (a package's `__init__.py`), or None if not Python source.

    Found without importing anything: the top-level spec from the import system (which
    executes no module), then each submodule from its parent's search locations. (A plain
    `importlib.util.find_spec("a.b")` imports `a`: for a rule's code inputs that would
    import JAX, SciPy and scikit-learn into every Snakemake start.)
    """
    top, *rest = name.split(".")
    try:
        spec = importlib.util.find_spec(top)
        for i, part in enumerate(rest):
            if spec is None or not spec.submodule_search_locations:
                return None
            spec = importlib.machinery.PathFinder.find_spec(".".join([top, *rest[: i + 1]]), list(spec.submodule_search_locations))
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin).resolve()


def _is_package(name: str) -> bool:
    f = module_file(name)
    return f is not None and f.name == "__init__.py"


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@functools.cache
def _direct_imports(name: str) -> tuple[str, ...]:
    """Modules `name` imports (absolute names), from its source."""
    path = module_file(name)
    if path is None:
        return ()
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if _is_package(name) else name.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.append(mod)
            # `from pkg import sub` imports the submodule when `sub` is one
            found += [f"{mod}.{alias.name}" for alias in node.names if module_file(f"{mod}.{alias.name}") is not None]
    return tuple(dict.fromkeys(found))


def closure(*modules: str, roots: tuple[str, ...] = ("ssmflow",)) -> list[Path]:
    """Source files of `modules` and of every module they import within `roots` (and within
    each start module's own top-level package), parents included, sorted."""
    roots = tuple(dict.fromkeys((*roots, *(m.split(".")[0] for m in modules))))
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen or name.split(".")[0] not in roots or module_file(name) is None:
            continue
        seen.add(name)
        todo += _parents(name) + list(_direct_imports(name))
    return sorted({module_file(n) for n in seen})


def workflow_paths(files: list[Path], basedir: str | Path = ".") -> list[str]:
    """`files` as the rule inputs of a workflow in `basedir`: a file of the installed ssmflow
    package becomes `src/ssmflow/...` when the workflow holds that copy (editable checkout
    or project copy); any other file keeps its absolute path."""
    import ssmflow

    pkg = Path(ssmflow.__file__).resolve().parent
    base = Path(basedir)
    out = []
    for f in files:
        try:
            rel = f.relative_to(pkg)
        except ValueError:
            out.append(str(f))
            continue
        local = Path("src/ssmflow") / rel
        out.append(str(local) if (base / local).exists() else str(f))
    return out


def source_digest(*modules: str) -> str:
    """A digest of the sources of `modules`' closure (module names and file contents)."""
    import hashlib

    h = hashlib.sha256()
    for f in closure(*modules):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def loaded_source_digest() -> str:
    """A digest of the sources of every ssmflow module imported so far in this process (each
    file's path in the package and its contents): the code that ran, known without git."""
    import hashlib
    import sys

    root = Path(__file__).resolve().parent
    files = set()
    for name, mod in list(sys.modules.items()):
        if (name == "ssmflow" or name.startswith("ssmflow.")) and getattr(mod, "__file__", None):
            files.add(Path(mod.__file__).resolve())
    h = hashlib.sha256()
    for f in sorted(files):
        rel = f.relative_to(root) if f.is_relative_to(root) else f
        h.update(str(rel).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()
