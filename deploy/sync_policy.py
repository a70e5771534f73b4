"""Write deploy/k8s/policy-configmap.yaml from policies/default.yaml (the ConfigMap holds the
policy verbatim; tests/deploy/test_manifests.py fails when the two differ).

    .venv/bin/python deploy/sync_policy.py [--policy policies/default.yaml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "deploy" / "k8s" / "policy-configmap.yaml"
HEADER = """\
# The live policy, mounted by the API and worker pods at /app/policies/live.yaml (beside the
# image's policies/, so its relative paths resolve). GENERATED from {source} by
# deploy/sync_policy.py: edit the policy there, re-run the script, then roll the pods out
# (`kubectl rollout restart deploy/warden-api deploy/warden-worker`): every decision records
# the policy version, so a new version should arrive by a rollout, not a live file swap.
apiVersion: v1
kind: ConfigMap
metadata:
  name: warden-policy
  labels:
    app.kubernetes.io/name: warden
data:
  default.yaml: |
"""


def render(policy_text: str, *, source: str) -> str:
    lines = policy_text.rstrip("\n").split("\n")
    body = "\n".join(("    " + line) if line.strip() else "" for line in lines)
    return HEADER.format(source=source) + body + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy", type=Path, default=ROOT / "policies" / "default.yaml")
    args = ap.parse_args(argv)
    policy = args.policy.resolve()
    source = str(policy.relative_to(ROOT)) if policy.is_relative_to(ROOT) else str(policy)
    OUT.write_text(render(policy.read_text(encoding="utf-8"), source=source), encoding="utf-8")
    print(f"written {OUT.relative_to(ROOT)} from {source}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
