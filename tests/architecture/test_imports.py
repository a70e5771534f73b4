"""The import rules of DESIGN.md, checked on the source (AST, nothing is imported).

- `warden.core` imports nothing of warden outside `warden.core`, and no I/O modules;
- `warden.decide`, `warden.policy` and `warden.evaluate` never import `warden.service`,
  `warden.store`, `warden.pipelines` or network clients.

Every import counts, including ones inside functions and `if TYPE_CHECKING:` blocks: a lazy
import still couples the layers. Failures name the file, the line and the rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

IO_MODULES = ("socket", "http", "urllib", "requests", "httpx", "aiohttp", "sqlalchemy", "sqlite3", "psycopg",
              "psycopg2", "redis", "fastapi", "starlette", "uvicorn")
NETWORK_CLIENTS = ("httpx", "requests", "aiohttp", "redis", "urllib.request", "http.client", "socket", "fastapi",
                   "starlette", "uvicorn")
ADAPTERS = ("warden.service", "warden.store", "warden.pipelines")


@dataclass(frozen=True, slots=True)
class Rule:
    """Modules under `applies_to` must not import anything under `forbidden` (nor, when
    `only_own_warden` is set, any `warden.*` module outside their own package)."""

    name: str
    applies_to: tuple[str, ...]
    forbidden: tuple[str, ...]
    why: str
    only_own_warden: bool = False


RULES: tuple[Rule, ...] = (
    Rule("core-is-pure", ("warden.core",), IO_MODULES,
         "core holds domain types only: it imports nothing of warden outside core and no I/O",
         only_own_warden=True),
    Rule("pure-layers-avoid-adapters", ("warden.decide", "warden.policy", "warden.evaluate"),
         (*ADAPTERS, *NETWORK_CLIENTS),
         "decide, policy and evaluate must not depend on service, store, pipelines or network clients"),
)


@dataclass(frozen=True, slots=True)
class Violation:
    path: str
    line: int
    rule: str
    imported: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule}] imports {self.imported!r}: {self.why}"


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def imported_modules(source: str, module: str, *, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) for every import in `source`, relative ones resolved.

    For `from pkg import name` both `pkg` and `pkg.name` are yielded, because `name` may be
    a submodule (`from urllib import request` imports `urllib.request`).
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(p for p in [*base_parts, node.module or ""] if p)
            else:
                base = node.module or ""
            yield node.lineno, base
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.lineno, node.args[0].value  # importlib.import_module("literal")


def check_source(source: str, module: str, path: str, *, is_package: bool = False) -> list[Violation]:
    """Violations of RULES in one module's source."""
    found: list[Violation] = []
    for rule in RULES:
        owner = next((p for p in rule.applies_to if _within(module, p)), None)
        if owner is None:
            continue
        for line, imported in imported_modules(source, module, is_package=is_package):
            bad = any(_within(imported, f) for f in rule.forbidden) or (
                rule.only_own_warden and _within(imported, "warden") and not _within(imported, owner))
            if bad:
                found.append(Violation(path, line, rule.name, imported, rule.why))
    return sorted(set(found), key=lambda v: (v.path, v.line, v.imported))


def check_tree(src: Path = SRC) -> list[Violation]:
    out: list[Violation] = []
    for path in sorted((src / "warden").rglob("*.py")):
        rel = path.relative_to(src)
        is_package = path.name == "__init__.py"
        parts = rel.with_suffix("").parts
        module = ".".join(parts[:-1] if is_package else parts)
        out += check_source(path.read_text(encoding="utf-8"), module, str(rel), is_package=is_package)
    return out


# -- tests --------------------------------------------------------------------------------------


def test_src_tree_follows_the_import_rules() -> None:
    assert (SRC / "warden" / "core").is_dir(), f"expected the package at {SRC / 'warden'}"
    violations = check_tree()
    assert not violations, "import rules of DESIGN.md violated:\n" + "\n".join(map(str, violations))


def test_checker_catches_core_importing_io_and_other_layers() -> None:
    source = "import os\nimport httpx\nfrom warden.store import repo\nfrom warden.core.results import Span\n"
    found = check_source(source, "warden.core.bad", "warden/core/bad.py")
    assert [(v.line, v.rule, v.imported) for v in found] == [
        (2, "core-is-pure", "httpx"),
        (3, "core-is-pure", "warden.store"),
        (3, "core-is-pure", "warden.store.repo"),
    ]
    assert str(found[0]).startswith("warden/core/bad.py:2: [core-is-pure] imports 'httpx'")


def test_checker_resolves_relative_and_lazy_imports() -> None:
    source = (
        "from ..service import app\n"
        "def later():\n"
        "    from urllib import request\n"
        "    import importlib\n"
        "    importlib.import_module('warden.pipelines.stream')\n"
        "from urllib.parse import quote\n"  # parsing a URL is not a network client
    )
    found = check_source(source, "warden.decide.engine", "warden/decide/engine.py")
    assert {(v.line, v.imported) for v in found} == {
        (1, "warden.service"), (1, "warden.service.app"), (3, "urllib.request"), (5, "warden.pipelines.stream"),
    }
    assert all(v.rule == "pure-layers-avoid-adapters" for v in found)


def test_checker_allows_what_the_rules_allow() -> None:
    assert check_source("from warden.core import Content\nimport yaml\n", "warden.policy.load",
                        "warden/policy/load.py") == []
    assert check_source("from . import results\nfrom .policy import Policy\n", "warden.core",
                        "warden/core/__init__.py", is_package=True) == []
    # Modules outside the ruled layers may import adapters.
    assert check_source("import httpx\nfrom warden.store import x\n", "warden.service.app",
                        "warden/service/app.py") == []
