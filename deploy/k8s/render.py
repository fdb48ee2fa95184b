"""Tools for deploy/k8s: the kustomize binary, rendering an overlay, the PrometheusRule.

    python -m deploy.k8s.render --install            # build kustomize (cached), print its path
    python -m deploy.k8s.render overlays/production  # render an overlay (like kubectl kustomize)
    python -m deploy.k8s.render --prometheusrule     # regenerate base/prometheusrule.yaml

kustomize is built from its Go module (the Go module proxy) with the local Go toolchain, pinned
to KUSTOMIZE_VERSION, into ~/.cache/cpwatch/tools/ (or $CPWATCH_TOOLS_DIR); $KUSTOMIZE names an
existing binary instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

K8S_DIR = Path(__file__).resolve().parent
RULES_FILE = K8S_DIR.parent / "prometheus" / "rules.yml"
PROMETHEUS_RULE_FILE = K8S_DIR / "base" / "prometheusrule.yaml"
# v5.7.1 builds with Go 1.24+; v5.8 needs Go 1.27.
KUSTOMIZE_VERSION = "v5.7.1"
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"


def tools_dir() -> Path:
    env = os.environ.get("CPWATCH_TOOLS_DIR")
    return Path(env) if env else Path.home() / ".cache" / "cpwatch" / "tools"


def kustomize(install: bool = True) -> Path:
    """The kustomize binary: $KUSTOMIZE, else the cached build, else build it now (Go)."""
    if env := os.environ.get("KUSTOMIZE"):
        return Path(env)
    target = tools_dir() / f"kustomize-{KUSTOMIZE_VERSION}" / "kustomize"
    if target.exists() or not install:
        return target
    go = shutil.which("go")
    if go is None:
        raise RuntimeError(
            "kustomize is not built and Go is not installed: install Go, or set KUSTOMIZE to a "
            f"kustomize {KUSTOMIZE_VERSION[:2]} binary"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(target.parent), "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    subprocess.run(  # noqa: S603 - fixed argv
        [go, "install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"],
        env=env,
        check=True,
        timeout=1800,
    )
    return target


def render(path: Path) -> list[dict[str, Any]]:
    """`kustomize build path`, parsed: one dict per object."""
    proc = subprocess.run(  # noqa: S603 - fixed argv
        [str(kustomize()), "build", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kustomize build {path} failed:\n{proc.stderr}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def prometheus_rule() -> dict[str, Any]:
    """The PrometheusRule object carrying exactly the groups of deploy/prometheus/rules.yml."""
    rules = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "cpwatch",
            "labels": {"app.kubernetes.io/name": "cpwatch"},
        },
        "spec": {"groups": rules["groups"]},
    }


def prometheus_rule_text() -> str:
    head = (
        "# GENERATED from deploy/prometheus/rules.yml by `python -m deploy.k8s.render "
        "--prometheusrule`;\n# do not edit: tests/unit/test_k8s_manifests.py fails when they "
        "differ.\n"
    )
    body = yaml.dump(
        prometheus_rule(), Dumper=_BlockDumper, sort_keys=False, width=1000, allow_unicode=True
    )
    return head + body


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as ``|`` blocks, as in rules.yml."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def main(argv: list[str]) -> int:
    if argv == ["--install"]:
        print(kustomize())
        return 0
    if argv == ["--prometheusrule"]:
        PROMETHEUS_RULE_FILE.write_text(prometheus_rule_text(), encoding="utf-8")
        print(f"wrote {PROMETHEUS_RULE_FILE}")
        return 0
    if len(argv) == 1:
        objs = render(K8S_DIR / argv[0] if not Path(argv[0]).is_absolute() else Path(argv[0]))
        sys.stdout.write(yaml.safe_dump_all(objs, sort_keys=False))
        return 0
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
