"""`warden models list|show|history|gate|promote|rollback` and `warden train --with-reviews`.

The retraining loop (issue 4, item 8)::

    warden train --with-reviews                     # candidate text-vN + policies/default.text-vN.yaml
    warden models gate text-vN                      # the release gate vs the champion; result recorded
    warden serve --shadow-policy policies/default.text-vN.yaml   # shadow mode on live traffic
    warden eval shadow --candidate-version <its policy version>  # live vs shadow
    warden models promote text-vN                   # refused without a passing gate for this exact artifact
    warden models rollback                          # back to the previous champion

Commands adapt options to `warden.learn.retrain` and `warden.learn.registry` and print.
Promotions and rollbacks also go to the audit log when a store is configured
(`--database-url` or env WARDEN_DATABASE_URL).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from warden.cli._common import DATABASE_URL_HELP, cli_actor
from warden.learn.registry import HISTORY_FILE
from warden.policy import DEFAULT_POLICY_PATH

#: exit codes: 1 = refused / gate failed, 2 = unusable input (as `warden eval gate`)
REFUSED = 1
UNUSABLE = 2

RegistryOption = Annotated[Path | None, typer.Option(
    "--registry", help="Model registry folder. Default: env WARDEN_MODEL_REGISTRY, else models/registry.")]
LivePolicyOption = Annotated[Path, typer.Option("--policy", "-p", help="The live policy YAML.")]
DatabaseOption = Annotated[str | None, typer.Option("--database-url", help=DATABASE_URL_HELP)]


def _fail(message: str, code: int = REFUSED) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _open(registry: Path | None, policy: Path, *, create: bool = True):
    """The registry; created on first use from the live policy (its model folder becomes the
    initial champion, registered in place). Read-only commands never create it."""
    from warden.learn.registry import ModelRegistry, RegistryError
    from warden.learn.retrain import RetrainError, ensure_registry
    from warden.policy import PolicyError

    reg = ModelRegistry(registry or ModelRegistry.default_root())
    if not create and not reg.initialized:
        raise _fail(f"no model registry at {reg.root} yet: `warden train --with-reviews` creates it (the live "
                    "policy's model folder becomes the initial champion)", UNUSABLE)
    try:
        ensure_registry(reg, policy, actor=cli_actor())
    except (RegistryError, RetrainError, PolicyError) as exc:
        raise _fail(str(exc), UNUSABLE) from None
    return reg


def _audit_store(database_url: str | None):
    """The store for audit events, only when one is configured; opened before anything
    changes, so an unreachable database stops the command instead of losing the event."""
    from warden.cli._common import open_store

    if database_url is None and not os.environ.get("WARDEN_DATABASE_URL"):
        return None
    return open_store(database_url)


def _macro(record: Any, tier: str) -> str:
    v = (record.metrics.get("macro_pr_auc") or {}).get(tier)
    return "-" if v is None else f"{v:.3f}"


# -- training -------------------------------------------------------------------------------------

def train_with_reviews(*, policy: Path, data: Path | None, database_url: str | None, registry: Path | None,
                       seed: int, max_per_source: int | None, sources: list[str] | None, quick: bool) -> None:
    """`warden train --with-reviews`: a candidate version with reviewer labels, registered with
    its lineage, plus its candidate policy (see `warden.learn.retrain.build_candidate`)."""
    from warden.cli._common import open_store
    from warden.learn.registry import RegistryError
    from warden.learn.retrain import RetrainError, build_candidate
    from warden.learn.review_data import describe, read_reviewer_labels
    from warden.learn.text_data import data_dir

    data = data or data_dir()
    if not data.is_dir():
        raise _fail(f"datasets folder {data} not found: set WARDEN_DATA or pass --data", UNUSABLE)
    reg = _open(registry, policy)
    store = open_store(database_url)
    try:
        read = read_reviewer_labels(store)
    finally:
        store.close()
    if read.without_text:
        typer.secho(f"warning: {read.without_text} reviewer label(s) skipped: their content's text is not archived "
                    "(run the service with --archive-content to keep it)", err=True, fg=typer.colors.YELLOW)
    if not read.labels:
        typer.secho("warning: no reviewer labels with text in the store: the candidate is trained on the datasets "
                    "only", err=True, fg=typer.colors.YELLOW)
    command = " ".join(["warden train --with-reviews", f"--policy {policy}", f"--seed {seed}"]
                       + ([f"--max-per-source {max_per_source}"] if max_per_source is not None else [])
                       + ([f"--sources {','.join(sources)}"] if sources else []) + (["--quick"] if quick else []))
    try:
        build = build_candidate(registry=reg, live_policy=policy, data_dir=data, labels=read.labels,
                                without_text=read.without_text, sources=sources, seed=seed,
                                max_per_source=max_per_source, loso=not quick, n_boot=20 if quick else 200,
                                measure_speed=not quick, progress=not quick, actor=cli_actor(), command=command)
    except (RegistryError, RetrainError) as exc:
        raise _fail(str(exc), UNUSABLE) from None
    rec, champ = build.record, reg.champion()
    rev = describe(build.merge)
    typer.echo(f"candidate {rec.version} (parent {rec.lineage.parent}) written to {build.model_dir}")
    typer.echo(f"  reviewer labels: {rev['labels']} -> {rev['texts']} texts (split {rev['split']}; "
               f"{rev['overrides']} dataset rows overridden; {rev['disagreements']} reviewer disagreements)")
    typer.echo(f"  held-out macro PR-AUC linear {_macro(rec, 'linear')} / embedding {_macro(rec, 'embedding')} "
               f"(champion {champ.version}: {_macro(champ, 'linear')} / {_macro(champ, 'embedding')}; "
               "different data, compare with the gate)")
    typer.echo(f"  candidate policy {build.policy.path} (version {build.policy.version})")
    typer.echo(f"next: warden models gate {rec.version}   then   warden serve --shadow-policy {build.policy.path}")


# -- reading the registry ---------------------------------------------------------------------------

def list_cmd(
    registry: RegistryOption = None,
    policy: LivePolicyOption = Path(DEFAULT_POLICY_PATH),
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON.")] = False,
) -> None:
    """List model versions: status, parent, reviewer labels, held-out macro PR-AUC, latest gate."""
    reg = _open(registry, policy, create=False)
    versions = reg.versions()
    if as_json:
        typer.echo(json.dumps([v.to_dict() for v in versions], indent=1))
        return
    table = Table(title=f"Model registry {reg.root}")
    for col in ("version", "status", "parent", "created", "reviewer labels", "PR-AUC lin/emb", "latest gate"):
        table.add_column(col)
    for v in versions:
        g = v.latest_gate
        gate = "-" if g is None else f"{'PASSED' if g.passed else 'FAILED'} {g.at} vs {g.champion}"
        data = v.lineage.data
        table.add_row(v.version, v.status.value, v.lineage.parent or "-", v.created_at,
                      str(data.reviewer_labels) if data else "-", f"{_macro(v, 'linear')}/{_macro(v, 'embedding')}",
                      gate)
    Console().print(table)


def show_cmd(
    version: Annotated[str, typer.Argument(help="Model version, e.g. text-v2.")],
    registry: RegistryOption = None,
    policy: LivePolicyOption = Path(DEFAULT_POLICY_PATH),
) -> None:
    """Print one version's full record (lineage, metrics, gates) as JSON."""
    from warden.learn.registry import RegistryError

    reg = _open(registry, policy, create=False)
    try:
        typer.echo(json.dumps(reg.get(version).to_dict(), indent=1))
    except RegistryError as exc:
        raise _fail(str(exc), UNUSABLE) from None


def history_cmd(registry: RegistryOption = None, policy: LivePolicyOption = Path(DEFAULT_POLICY_PATH)) -> None:
    """Print the append-only history: registrations, gates, promotions, rollbacks."""
    reg = _open(registry, policy, create=False)
    for ev in reg.history():
        prev = f" (previous {ev.previous})" if ev.previous else ""
        typer.echo(f"{ev.at}  {ev.event:9} {ev.version}{prev}  by {ev.actor}  {json.dumps(ev.details)}")


# -- gate, promote, rollback ---------------------------------------------------------------------------

def gate_cmd(
    version: Annotated[str, typer.Argument(help="Candidate model version, e.g. text-v2.")],
    gates: Annotated[Path, typer.Option("--gates", help="Gates YAML (rules, limits and data).")]
    = Path("gates/default.yaml"),
    registry: RegistryOption = None,
    policy: LivePolicyOption = Path(DEFAULT_POLICY_PATH),
    report_dir: Annotated[Path | None, typer.Option("--report", help="Also write the full report here.")] = None,
) -> None:
    """Run the release gate (`warden eval gate`) on VERSION's candidate policy against the live
    (champion) policy and record the result in the registry. Exit 0 passed, 1 failed, 2 unusable.

    The candidate policy is rewritten from the live policy first, so the gate always measures
    the policy that promotion would make live."""
    import hashlib

    from warden.cli.eval_report import gate_cmd as eval_gate
    from warden.learn.registry import GateRecord, RegistryError, Status, artifact_fingerprint, now_iso
    from warden.learn.retrain import PolicyText, RetrainError, write_candidate_policy

    reg = _open(registry, policy)
    try:
        record = reg.get(version)
        if record.status is Status.CHAMPION:
            raise RetrainError(f"{version} is the champion: gate a candidate")
        current = artifact_fingerprint(reg.resolve(record))
        if current != record.artifact_sha256:
            raise RetrainError(f"{version}: artifact {reg.resolve(record)} changed since it was registered; train a "
                               "new candidate instead of editing one")
        cand = write_candidate_policy(reg, record, policy)
        live = PolicyText.read(policy)
    except (RegistryError, RetrainError) as exc:
        raise _fail(str(exc), UNUSABLE) from None
    if not gates.exists():
        raise _fail(f"{gates}: file not found (pass --gates)", UNUSABLE)
    champion = reg.champion().version
    typer.echo(f"gating {version} ({cand.path}, policy {cand.version}) against champion {champion} "
               f"({live.path}, policy {live.version})")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gate.json"
        code = 0
        try:  # the one implementation of the gate: same data, rules and printed table as `warden eval gate`
            eval_gate(gates=gates, candidate=cand.path, champion=live.path, policy=live.path, report_dir=report_dir,
                      json_out=out)
        except typer.Exit as exc:
            code = exc.exit_code
        if code not in (0, 1) or not out.exists():
            raise _fail(f"the gate could not run (exit {code}); nothing was recorded for {version}", UNUSABLE)
        result = json.loads(out.read_text(encoding="utf-8"))
    failures = tuple(f"{r['category']}: {r['rule']}: {r['message']}" for r in result["results"] if r["blocking"])
    warnings = tuple(f"{r['category']}: {r['rule']}: {r['message']}" for r in result["results"]
                     if not r["blocking"] and r["status"] == "unmeasured")
    gate = GateRecord(
        passed=bool(result["passed"]) and code == 0, at=now_iso(), by=cli_actor(), gate_name=result["name"],
        gates_file=str(gates), gates_sha256=hashlib.sha256(gates.read_bytes()).hexdigest(), champion=champion,
        artifact_sha256=record.artifact_sha256, candidate_policy_version=cand.version,
        candidate_policy_fingerprint=cand.fingerprint, live_policy_path=str(live.path),
        live_policy_version=live.version, live_policy_fingerprint=live.fingerprint, n_rules=len(result["results"]),
        failures=failures, warnings=warnings)
    reg.record_gate(version, gate)
    verdict = "PASSED" if gate.passed else "FAILED"
    typer.echo(f"recorded: gate {gate.gate_name} {verdict} for {version} against {champion}")
    if not gate.passed:
        raise typer.Exit(REFUSED)
    typer.echo(f"next: shadow it (warden serve --shadow-policy {cand.path}), then `warden models promote {version}`")


def promote_cmd(
    version: Annotated[str, typer.Argument(help="Candidate model version to make champion.")],
    registry: RegistryOption = None,
    policy: LivePolicyOption = Path(DEFAULT_POLICY_PATH),
    database_url: DatabaseOption = None,
) -> None:
    """Make VERSION the champion and write its gated policy as the new live policy version.

    Refused (exit 1) unless the latest gate of VERSION passed against the current champion and
    live policy, and neither the artifact nor the candidate policy changed since."""
    from warden.learn.registry import RegistryError
    from warden.learn.retrain import RetrainError, promote_policy

    reg = _open(registry, policy)
    store = _audit_store(database_url)
    try:
        change, pol = promote_policy(registry=reg, version=version, live_policy=policy, actor=cli_actor())
        _print_policy_change(pol)
        typer.echo(f"promoted {change.champion.version} (was {change.previous.version}); restart or reload the "
                   "service to serve it")
        _audit(store, "model.promote", f"model:{version}",
               {"previous": change.previous.version, "policy": str(pol.path), "policy_version_old": pol.old_version,
                "policy_version_new": pol.new_version,
                "gate": asdict(change.champion.latest_gate) if change.champion.latest_gate else None})
    except (RegistryError, RetrainError) as exc:
        raise _fail(str(exc), REFUSED) from None
    finally:
        if store is not None:
            store.close()


def rollback_cmd(
    registry: RegistryOption = None,
    policy: LivePolicyOption = Path(DEFAULT_POLICY_PATH),
    database_url: DatabaseOption = None,
) -> None:
    """Go back to the champion before the current one (a new live policy version)."""
    from warden.learn.registry import RegistryError
    from warden.learn.retrain import RetrainError, rollback_policy

    reg = _open(registry, policy)
    store = _audit_store(database_url)
    try:
        change, pol = rollback_policy(registry=reg, live_policy=policy, actor=cli_actor())
        _print_policy_change(pol)
        typer.echo(f"rolled back to {change.champion.version} (was {change.previous.version})")
        _audit(store, "model.rollback", f"model:{change.champion.version}",
               {"previous": change.previous.version, "policy": str(pol.path), "policy_version_old": pol.old_version,
                "policy_version_new": pol.new_version})
    except (RegistryError, RetrainError) as exc:
        raise _fail(str(exc), REFUSED) from None
    finally:
        if store is not None:
            store.close()


def _audit(store: Any, event: str, subject: str, details: dict[str, Any]) -> None:
    if store is None:
        return
    try:
        store.append_audit(cli_actor(), event, subject, details)
    except Exception as exc:  # the change is done: say so loudly rather than pretend it failed
        typer.secho(f"warning: {event} done, but the audit event could not be written ({type(exc).__name__}: "
                    f"{str(exc)[:200]}); the registry's {HISTORY_FILE} has it", err=True, fg=typer.colors.RED)


def _print_policy_change(pol: Any) -> None:
    typer.echo(f"{pol.path}: {pol.old_version} -> {pol.new_version}: {len(pol.changes)} change(s)")
    for c in pol.changes:
        typer.echo(("  ! " if c.affects_decisions else "    ") + c.format())


def register(app: typer.Typer) -> None:
    """Add the registry commands to `warden models`."""
    app.command("list")(list_cmd)
    app.command("show")(show_cmd)
    app.command("history")(history_cmd)
    app.command("gate")(gate_cmd)
    app.command("promote")(promote_cmd)
    app.command("rollback")(rollback_cmd)


__all__ = ["gate_cmd", "history_cmd", "list_cmd", "promote_cmd", "register", "rollback_cmd", "show_cmd",
           "train_with_reviews"]
