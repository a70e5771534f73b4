"""`warden hash ...`: hash images, manage hash banks, look images or hashes up.

    warden hash compute photo.jpg other.png           # PDQ (+ quality) and MD5, one JSON line each
    warden hash bank create known-bad --category violence/graphic --action remove
    warden hash bank add known-bad photo.jpg f8f8f0ce...  --source "case 1234"
    warden hash bank import known-bad hashes.csv       # csv, json (HMA bank content) or te lines
    warden hash bank export known-bad --format json -o known-bad.json
    warden hash lookup upload.jpg                      # the decision a match calls for
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from warden.cli._common import DATABASE_URL_HELP, cli_actor, open_store

hash_app = typer.Typer(help="Hash images (PDQ, MD5), manage hash banks, look up matches.", no_args_is_help=True)
bank_app = typer.Typer(help="Hash banks: create, list, add, remove, import, export, delete.", no_args_is_help=True)
hash_app.add_typer(bank_app, name="bank")

DbOption = Annotated[str | None, typer.Option("--database-url", help=DATABASE_URL_HELP)]
_PDQ = re.compile(r"^[0-9a-fA-F]{64}$")
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False))


def _read_image(path: Path) -> bytes:
    from warden.detectors.hashing.pdq import ImageError

    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None


def _is_video(path: Path) -> bool:
    """Sniffed from the file's first bytes, like every media entry point (not the extension)."""
    from warden.core import Modality
    from warden.detectors.media.guards import sniff

    try:
        with open(path, "rb") as fh:
            found = sniff(fh.read(64))
    except OSError:
        return False
    return found is not None and found.kind is Modality.VIDEO


def _video_part(path: Path) -> Any:
    from warden.core import MediaPart, Modality

    return MediaPart(kind=Modality.VIDEO, path=str(path), name=path.name)


@hash_app.command("compute")
def compute(
    files: Annotated[list[Path], typer.Argument(help="Image files (PNG, JPEG, GIF, WebP, BMP) or videos (MP4, MOV, "
                                                "WebM, AVI).")],
    dihedral: Annotated[bool, typer.Option("--dihedral", help="Also print the 8 rotation/mirror variants.")] = False,
) -> None:
    """Print each file's PDQ hash, PDQ quality (below 50: too featureless to match on) and MD5
    as one JSON line; for a video, its MD5 and the PDQ of each sampled frame (one every second
    and at scene cuts: `frames`). A file that cannot be read gets an "error" field; the exit
    code is 1 then."""
    from warden.detectors.hashing.images import hash_image
    from warden.detectors.hashing.pdq import ImageError, MissingDependency
    from warden.detectors.hashing.video import hash_video

    failed = 0
    for path in files:
        try:
            if _is_video(path):
                _echo_json({"file": str(path), **hash_video(_video_part(path)).to_dict()})
                continue
            hashes = hash_image(_read_image(path), dihedral=dihedral)
        except ImageError as exc:
            failed += 1
            _echo_json({"file": str(path), "error": str(exc)})
            continue
        except MissingDependency as exc:
            raise _fail(str(exc)) from None
        out: dict[str, Any] = {"file": str(path), **hashes.to_dict()}
        if dihedral:
            out["dihedral"] = dict(hashes.pdq.variants())
        _echo_json(out)
    if failed:
        raise typer.Exit(1)


# -- banks ---------------------------------------------------------------------------------------
def _repo(database_url: str | None):
    from warden.store.hash_repo import HashBankRepository

    store = open_store(database_url)
    return store, HashBankRepository(store)


def _check_category(category: str, policy: Path | None) -> None:
    if policy is None:
        return
    from warden.policy import PolicyError, load_policy

    try:
        loaded = load_policy(policy, check_detectors=False)
    except PolicyError as exc:
        raise _fail(str(exc)) from None
    if category not in loaded.categories:
        raise _fail(f"category {category!r} is not in {policy}; it defines: {', '.join(sorted(loaded.categories))}")


@bank_app.command("create")
def bank_create(
    name: Annotated[str, typer.Argument(help="Bank name (letters, digits, _ - .).")],
    category: Annotated[str, typer.Option("--category", help="The policy category a match means, e.g. "
                                          "sexual/minors.")],
    action: Annotated[str, typer.Option("--action", help="What a match calls for: remove, escalate, "
                                        "hold_for_review, limit, label.")] = "remove",
    report: Annotated[bool, typer.Option("--report", help="Matches must also be reported (e.g. to NCMEC).")] = False,
    description: Annotated[str, typer.Option("--description", help="What the bank holds and where it comes "
                                             "from.")] = "",
    policy: Annotated[Path | None, typer.Option("--policy", help="Check the category against this policy.")] = None,
    database_url: DbOption = None,
) -> None:
    """Create an empty bank."""
    from warden.detectors.hashing.banks import Bank
    from warden.store.hash_repo import HashBankError

    _check_category(category, policy)
    try:
        bank = Bank(name=name, category=category, action=action, report=report, description=description)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    store, repo = _repo(database_url)
    try:
        record = repo.create_bank(bank, actor=cli_actor())
    except HashBankError as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()
    typer.echo(f"created bank {record.bank.name!r}: category={record.bank.category} action={record.bank.action.value}"
               f"{' report' if record.bank.report else ''}")


@bank_app.command("list")
def bank_list(as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
              database_url: DbOption = None) -> None:
    """List banks with their category, action and number of hashes."""
    store, repo = _repo(database_url)
    try:
        records = repo.list_banks()
    finally:
        store.close()
    if as_json:
        for r in records:
            _echo_json(r.to_dict())
        return
    if not records:
        typer.echo("no hash banks; create one with `warden hash bank create NAME --category C`")
    for r in records:
        b = r.bank
        typer.echo(f"{b.name:<32} {b.category:<24} {b.action.value:<16} {'report ' if b.report else ''}"
                   f"{'' if b.enabled else 'DISABLED '}{r.hash_count:,} hashes")


def _entries_from_args(items: list[str], *, source: str | None, category: str | None, note: str | None,
                       content_id: str | None, crops: bool = False) -> list[Any]:
    """Hashes given as hex, or image files (their PDQ and MD5, and with `crops` the PDQ of
    each window of the crop grid, noted `crop:<window>`), or videos (their MD5 and one `vpdq`
    row per distinct matchable sampled frame, all with the video's content id)."""
    from warden.detectors.hashing.banks import BankEntry
    from warden.detectors.hashing.crops import crop_variant_hashes
    from warden.detectors.hashing.images import hash_image
    from warden.detectors.hashing.pdq import decode_image
    from warden.detectors.hashing.video import hash_video

    meta = {"source": source, "category": category, "note": note, "content_id": content_id}
    entries = []
    videos = [item for item in items if not _PDQ.match(item) and not _MD5.match(item) and _is_video(Path(item))]
    if content_id and len(videos) > 1:
        raise ValueError("--content-id names one video (its frames are grouped by it); add videos one at a time")
    for item in items:
        if _PDQ.match(item):
            entries.append(BankEntry(signal_type="pdq", signal=item, **meta))
        elif _MD5.match(item):
            entries.append(BankEntry(signal_type="md5", signal=item, **meta))
        elif item in videos:
            path = Path(item)
            vh = hash_video(_video_part(path))
            video_meta = {**meta, "content_id": content_id or f"{path.name[:400]}#{vh.md5[:12]}"}
            entries.append(BankEntry(signal_type="md5", signal=vh.md5, **video_meta))
            frames = vh.matchable(distinct=True)
            if not frames:
                raise ValueError(f"{path.name}: no sampled frame has PDQ quality >= 50 (flat or dark video); only its "
                                 "MD5 could be banked")
            entries += [BankEntry(signal_type="vpdq", signal=f.pdq, **{**video_meta, "note": f"t={f.time_s:.3f}s" + (
                f"; {note}" if note else "")}) for f in frames]
        else:
            path = Path(item)
            hashes = hash_image(_read_image(path), dihedral=False, trim_borders=False)
            file_meta = {**meta, "content_id": content_id or path.name}
            entries.append(BankEntry(signal_type="pdq", signal=hashes.pdq.original, **file_meta))
            entries.append(BankEntry(signal_type="md5", signal=hashes.md5, **file_meta))
            if crops:
                for window, pdq in crop_variant_hashes(decode_image(_read_image(path))):
                    crop_note = f"crop:{window}" + (f"; {note}" if note else "")
                    entries.append(BankEntry(signal_type="pdq", signal=pdq.hex, **{**file_meta, "note": crop_note}))
    return entries


@bank_app.command("add")
def bank_add(
    name: Annotated[str, typer.Argument(help="The bank.")],
    items: Annotated[list[str], typer.Argument(help="Image files (their PDQ and MD5 are banked), PDQ hashes (64 hex) "
                                               "or MD5 hashes (32 hex).")],
    source: Annotated[str | None, typer.Option("--source", help="Where the hashes come from.")] = None,
    category: Annotated[str | None, typer.Option("--category", help="A finer label than the bank's.")] = None,
    note: Annotated[str | None, typer.Option("--note")] = None,
    content_id: Annotated[str | None, typer.Option("--content-id", help="Your id of the banked content.")] = None,
    crops: Annotated[bool, typer.Option("--crops", help="For image files, also bank the PDQ of 14 crop windows so "
                                        "cropped copies match (more hashes, more false-match risk: see "
                                        "docs/hashing.md).")] = False,
    database_url: DbOption = None,
) -> None:
    """Add hashes; ones the bank already holds are counted as duplicates."""
    from warden.detectors.hashing.pdq import ImageError, MissingDependency
    from warden.store.hash_repo import HashBankError

    try:
        entries = _entries_from_args(items, source=source, category=category, note=note, content_id=content_id,
                                     crops=crops)
    except (ImageError, MissingDependency, ValueError) as exc:
        raise _fail(str(exc), 2) from None
    store, repo = _repo(database_url)
    try:
        result = repo.add_hashes(name, entries, actor=cli_actor())
    except HashBankError as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()
    typer.echo(f"{name}: added {result.added}, duplicates {result.duplicates}")


@bank_app.command("remove")
def bank_remove(
    name: Annotated[str, typer.Argument(help="The bank.")],
    items: Annotated[list[str], typer.Argument(help="Hash ids (numbers) or hashes (PDQ 64 hex, MD5 32 hex).")],
    database_url: DbOption = None,
) -> None:
    """Remove hashes from a bank (they stop matching at the next index refresh)."""
    from warden.store.hash_repo import HashBankError

    ids, signals = [], []
    for item in items:
        if item.isdigit():
            ids.append(int(item))
        elif _PDQ.match(item):
            signals.append(("pdq", item))
        elif _MD5.match(item):
            signals.append(("md5", item))
        else:
            raise _fail(f"{item!r} is neither a hash id nor a PDQ/MD5 hash", 2)
    store, repo = _repo(database_url)
    try:
        removed = repo.remove_hashes(name, actor=cli_actor(), ids=ids, signals=signals)
    except HashBankError as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()
    typer.echo(f"{name}: removed {removed}")
    if removed < len(items):
        typer.secho(f"{len(items) - removed} of the given hashes were not in the bank", err=True,
                    fg=typer.colors.YELLOW)


@bank_app.command("import")
def bank_import(
    name: Annotated[str, typer.Argument(help="The bank (created from the file's bank definition when a JSON "
                                        "export names one and the bank does not exist).")],
    file: Annotated[Path, typer.Argument(help="CSV, JSON (HMA bank content) or TE text file ('-' for stdin).")],
    fmt: Annotated[str | None, typer.Option("--format", help="csv, json or te (default: from the extension).")] = None,
    signal_type: Annotated[str | None, typer.Option("--signal-type", help="For files without a signal type "
                                                    "column: pdq or md5.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Source for rows without one.")] = None,
    database_url: DbOption = None,
) -> None:
    """Import a bank file. All-or-nothing: any bad row rejects the file, naming its line."""
    from warden.detectors.hashing.banks import Bank, BankFormatError, detect_format, parse_bank_file
    from warden.store.hash_repo import HashBankError

    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"cannot read {file}: {exc}") from None
    try:
        parsed = parse_bank_file(text, fmt=fmt or detect_format(str(file), text), default_signal_type=signal_type,
                                 defaults={"source": source, "added_by": cli_actor()})
    except (BankFormatError, ValueError) as exc:
        errors = getattr(exc, "errors", [])
        raise _fail("\n".join([str(exc), *(f"  {e}" for e in errors[1:])])) from None
    store, repo = _repo(database_url)
    try:
        if repo.get_bank(name) is None:
            if parsed.bank is None:
                raise _fail(f"no hash bank named {name!r}; create it first with `warden hash bank create {name} "
                            "--category C`")
            d = parsed.bank.to_dict()
            repo.create_bank(Bank(**{**d, "name": name}), actor=cli_actor())
            typer.echo(f"created bank {name!r} from the file's definition (category={parsed.bank.category})")
        result = repo.add_hashes(name, parsed.entries, actor=cli_actor())
    except HashBankError as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()
    typer.echo(f"{name}: added {result.added}, duplicates {result.duplicates}")


@bank_app.command("export")
def bank_export(
    name: Annotated[str, typer.Argument(help="The bank.")],
    fmt: Annotated[str, typer.Option("--format", help="json (HMA bank content, with the bank definition), csv or "
                                     "te.")] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    database_url: DbOption = None,
) -> None:
    """Export a bank (json keeps the bank's category and action, for `hash_bank` `files`)."""
    from warden.detectors.hashing.banks import FORMATS, export_bank

    if fmt not in FORMATS:
        raise _fail(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", 2)
    store, repo = _repo(database_url)
    try:
        record = repo.get_bank(name)
        if record is None:
            raise _fail(f"no hash bank named {name!r}")
        text = export_bank(record.bank, repo.iter_hashes(name), fmt=fmt)
    finally:
        store.close()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {record.hash_count:,} hashes of {name!r} to {output}", err=True)


@bank_app.command("delete")
def bank_delete(
    name: Annotated[str, typer.Argument(help="The bank.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: the bank and all its hashes are deleted.")] = False,
    database_url: DbOption = None,
) -> None:
    """Delete a bank and its hashes (recorded in the audit log)."""
    from warden.store.hash_repo import HashBankError

    if not yes:
        raise _fail(f"this deletes bank {name!r} and all its hashes; pass --yes to confirm", 2)
    store, repo = _repo(database_url)
    try:
        removed = repo.delete_bank(name, actor=cli_actor())
    except HashBankError as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()
    typer.echo(f"deleted bank {name!r} ({removed:,} hashes)")


# -- lookup ---------------------------------------------------------------------------------------
@hash_app.command("lookup")
def lookup(
    items: Annotated[list[str], typer.Argument(help="Image files, PDQ hashes (64 hex) or MD5 hashes (32 hex).")],
    max_distance: Annotated[int, typer.Option("--max-distance", min=0, max=31, help="PDQ Hamming distance that "
                                              "counts as a match.")] = 31,
    banks: Annotated[str | None, typer.Option("--banks", help="Only these banks, comma-separated.")] = None,
    exact_dihedral: Annotated[bool, typer.Option("--exact-dihedral", help="Hash the 8 rotations/mirrors in pixel "
                                                 "space: exact for mirrored copies, ~7x slower.")] = False,
    database_url: DbOption = None,
) -> None:
    """Print, per input, one JSON line: the decision its matches call for (categories, action,
    report) and each match (bank, distance, hash id, dihedral variant). Exit code 1 if an
    input could not be read or hashed."""
    from warden.detectors.hashing.images import hash_image, lookup_image
    from warden.detectors.hashing.matcher import HashDecision
    from warden.detectors.hashing.pdq import ImageError, MissingDependency

    names = [b.strip() for b in banks.split(",") if b.strip()] if banks else None
    store, repo = _repo(database_url)
    try:
        matcher, _ = repo.load_matcher(banks=names)
    finally:
        store.close()
    failed = 0
    for item in items:
        out: dict[str, Any] = {"input": item}
        try:
            if _PDQ.match(item):
                matches = matcher.match_pdq(item.lower(), max_distance=max_distance, banks=names)
            elif _MD5.match(item):
                matches = matcher.match_md5(item, banks=names)
            elif _is_video(Path(item)):
                _echo_json({**out, **_lookup_video(matcher, Path(item), max_distance, names)})
                continue
            else:
                hashes = hash_image(_read_image(Path(item)), exact_dihedral=exact_dihedral)
                out["hashes"] = hashes.to_dict()
                matches = lookup_image(matcher, hashes, max_distance=max_distance, banks=names)
        except ImageError as exc:
            failed += 1
            _echo_json({**out, "error": str(exc)})
            continue
        except MissingDependency as exc:
            raise _fail(str(exc)) from None
        _echo_json({**out, **HashDecision.from_matches(matches).to_dict()})
    if failed:
        raise typer.Exit(1)


def _lookup_video(matcher: Any, path: Path, max_distance: int, names: list[str] | None) -> dict[str, Any]:
    from warden.detectors.hashing.video import hash_video, lookup_video

    return lookup_video(matcher, hash_video(_video_part(path)), max_distance=max_distance, banks=names)


__all__ = ["bank_app", "hash_app"]
