"""Running the helm binary that hack/build-binaries.sh builds, and rendering the chart with it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import ROOT, cache_dir, read_versions

CHART_DIR = ROOT / "charts" / "apiservice-operator"
RELEASE = "apiservice-operator"
RELEASE_NAMESPACE = "apiservice-operator-system"


def helm_path() -> Path:
    """Return the helm built at the version pinned in hack/versions.env."""
    return cache_dir() / "bin" / f"helm-{read_versions()['HELM_VERSION']}" / "helm"


def require_helm() -> Path:
    """Return the helm binary, or skip the test when it has not been built yet."""
    path = helm_path()
    if not path.is_file():
        pytest.skip(f"helm is not built at {path}: run `hack/build-binaries.sh helm`")
    return path


def run_helm(
    *args: str, check: bool = True, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run helm; with `check`, a failure raises with its output."""
    result = subprocess.run(
        [str(require_helm()), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"helm {' '.join(args)} failed with exit code {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def template_args(
    values: Mapping[str, Any] | None,
    tmp_path: Path,
    *,
    release: str = RELEASE,
    namespace: str = RELEASE_NAMESPACE,
) -> list[str]:
    """Build the arguments of `helm template`, writing `values` to a file under tmp_path."""
    args = ["template", release, str(CHART_DIR), "--namespace", namespace]
    if values:
        values_file = tmp_path / "values.yaml"
        values_file.write_text(yaml.safe_dump(dict(values)))
        args += ["--values", str(values_file)]
    return args


def render_chart_text(
    values: Mapping[str, Any] | None,
    tmp_path: Path,
    *,
    release: str = RELEASE,
    namespace: str = RELEASE_NAMESPACE,
) -> str:
    """Return the YAML text that `helm template` renders with the given values."""
    return run_helm(*template_args(values, tmp_path, release=release, namespace=namespace)).stdout


def render_chart(
    values: Mapping[str, Any] | None,
    tmp_path: Path,
    *,
    release: str = RELEASE,
    namespace: str = RELEASE_NAMESPACE,
) -> list[dict[str, Any]]:
    """Return the objects that `helm template` renders with the given values."""
    text = render_chart_text(values, tmp_path, release=release, namespace=namespace)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(objects: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Return the objects of one kind, in rendering order."""
    return [obj for obj in objects if obj["kind"] == kind]
