"""`warden datasets`: list, show and validate the dataset manifests (datasets/manifests, datasets/golden)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

datasets_app = typer.Typer(help="Labeled dataset manifests: list, show, validate.", no_args_is_help=True)


def _console() -> Console:
    return Console(width=140)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _load(name: str):
    from warden.evaluate.manifests import ManifestError, find_manifest

    try:
        return find_manifest(name)
    except ManifestError as exc:
        raise _fail(str(exc)) from None
    except KeyError as exc:
        raise _fail(str(exc.args[0])) from None


@datasets_app.command("list")
def datasets_list() -> None:
    """Every shipped manifest: kind, path, split, labeled categories, group columns."""
    from warden.evaluate.manifests import ManifestError, load_manifest, manifest_paths

    table = Table(title="dataset manifests")
    for col in ("name", "kind", "path", "split", "categories", "groups", "license"):
        table.add_column(col, overflow="fold")
    bad = 0
    for name, path in manifest_paths().items():
        try:
            m = load_manifest(path)
        except ManifestError as exc:
            bad += 1
            table.add_row(name, "[red]invalid[/red]", str(path), "", str(exc.problems[0].message), "", "")
            continue
        split = m.split.scheme if m.split.scheme == "all" else f"hash:{m.split.part}"
        kind = f"golden ({m.rows} rows)" if m.frozen else "manifest"
        table.add_row(name, kind, m.path, split, ", ".join(m.labels), ", ".join(m.groups) or "-", m.license)
    _console().print(table)
    if bad:
        raise typer.Exit(1)


@datasets_app.command("show")
def datasets_show(name: Annotated[str, typer.Argument(help="Manifest name or YAML path.")],
                  all_rows: Annotated[bool, typer.Option("--all-rows", help="Ignore the split (every row).")] = False,
                  top: Annotated[int, typer.Option(help="Group values shown per column.")] = 15) -> None:
    """Counts per category and label, per group value, and the checksum state."""
    from warden.evaluate.manifests import load_examples, summarize, validate

    m = _load(name)
    res = validate(m, check_rows=False)
    try:
        examples = load_examples(m, split=not all_rows)
    except (KeyError, ValueError, OSError) as exc:
        raise _fail(f"{m.name}: cannot read {m.path}: {exc}") from None
    s = summarize(m, examples)
    con = _console()
    split = "all rows" if all_rows or m.split.scheme == "all" else f"split {m.split.part}"
    con.print(f"[bold]{m.name}[/bold] v{m.version} ({split}): {s.rows} labeled rows; {m.description}")
    con.print(f"file {m.path}: checksum {res.checksum.value}" + (f" ({res.problems[0]})" if res.problems else ""))
    if m.frozen:
        pinned = "ok" if (s.rows == m.rows and s.ids_sha256 == m.ids_sha256) else "CHANGED"
        con.print(f"golden: pins {m.rows} rows, ids {m.ids_sha256}: {pinned}")
    t = Table(title="labels (absent = unknown)")
    for col in ("category", "positive", "negative", "unknown", "prevalence"):
        t.add_column(col, justify="right" if col != "category" else "left")
    for cat, c in s.label_counts.items():
        known = c[0] + c[1]
        t.add_row(cat, str(c[1]), str(c[0]), str(s.rows - known), f"{c[1] / known:.3f}" if known else "-")
    con.print(t)
    for g, counts in s.group_counts.items():
        gt = Table(title=f"group column {g!r} ({len(counts)} values)")
        gt.add_column("value")
        gt.add_column("rows", justify="right")
        for v, n in list(counts.items())[:top]:
            gt.add_row(v, str(n))
        con.print(gt)


@datasets_app.command("validate")
def datasets_validate(name: Annotated[str | None, typer.Argument(help="Manifest name or YAML path.")] = None,
                      all_: Annotated[bool, typer.Option("--all", help="Validate every shipped manifest.")] = False,
                      rows: Annotated[bool, typer.Option("--rows/--no-rows",
                                                         help="Also read the rows (default: golden sets only).")]
                      = False) -> None:
    """Schema, file checksum, and for golden sets the row count and ids hash. Exits 1 on any problem."""
    from warden.evaluate.manifests import ManifestError, load_manifest, manifest_paths, validate

    if (name is None) == (not all_):
        raise _fail("give a manifest NAME or --all")
    items = list(manifest_paths().items()) if all_ else [(name, None)]
    table = Table(title="manifest validation")
    for col in ("name", "checksum", "rows", "result"):
        table.add_column(col, overflow="fold")
    failed = 0
    for n, path in items:
        try:
            m = load_manifest(path) if path is not None else _load(n)
        except ManifestError as exc:
            failed += 1
            table.add_row(n, "-", "-", f"[red]{exc}[/red]")
            continue
        res = validate(m, check_rows=True if rows else None)
        ok = res.ok
        failed += not ok
        table.add_row(m.name, res.checksum.value, str(res.rows) if res.rows is not None else "-",
                      "[green]ok[/green]" if ok else "[red]" + "; ".join(res.problems) + "[/red]")
    _console().print(table)
    if failed:
        raise typer.Exit(1)
