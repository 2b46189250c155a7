"""Access to the local control plane that hack/cluster.sh runs, for the cluster test tier."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = ROOT / "hack" / "cluster.sh"
LOCAL_KUBECONFIG = Path(os.environ.get("CLUSTER_DIR", ROOT / ".cluster")) / "kubeconfig"
LOCAL_CONTEXT = "apiservice-local"
CRD_PATH = ROOT / "crds" / "apiservice.dev_apiservices.yaml"


def read_versions() -> dict[str, str]:
    """Read the pinned component versions from hack/versions.env."""
    versions = {}
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            versions[key.strip()] = value.strip()
    return versions


def cache_dir() -> Path:
    """Return the binary cache folder, resolved as hack/build-binaries.sh resolves it."""
    if "APISERVICE_CACHE_DIR" in os.environ:
        return Path(os.environ["APISERVICE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "apiservice-operator"


def kubectl_path() -> Path:
    """Return the kubectl built at the cluster's own version."""
    return cache_dir() / "bin" / f"kubernetes-{read_versions()['KUBE_VERSION']}" / "kubectl"


def check_local_context(kubeconfig: Path) -> None:
    """Raise unless the kubeconfig's current context is the local test cluster on loopback.

    Cluster tests create and delete namespaces freely, so they must never reach a real cluster.
    """
    config = yaml.safe_load(kubeconfig.read_text())
    context_name = config.get("current-context")
    if context_name != LOCAL_CONTEXT:
        raise RuntimeError(
            f"kubeconfig {kubeconfig} has current context {context_name!r}, not the local test "
            f"cluster {LOCAL_CONTEXT!r}: start it with `make cluster-up`"
        )
    context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    host = urlparse(cluster["server"]).hostname
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise RuntimeError(
            f"kubeconfig {kubeconfig} points at {cluster['server']}, not at 127.0.0.1: "
            "cluster tests run only against the local control plane"
        )


@dataclass
class Cluster:
    """A running cluster that tests talk to through kubectl and its kubeconfig."""

    kubeconfig: Path
    kubectl_binary: Path = field(default_factory=kubectl_path)

    @property
    def env(self) -> dict[str, str]:
        """Return an environment for subprocesses that points them at this cluster."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; with `check`, a failure raises with its stderr."""
        result = subprocess.run(
            [str(self.kubectl_binary), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed with exit code {result.returncode}:\n"
                f"{result.stderr}"
            )
        return result

    def get_json(self, *args: str) -> Any:
        """Return the parsed `kubectl get -o json` output for the given arguments."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: str | dict[str, Any] | list[dict[str, Any]], namespace: str) -> None:
        """Apply objects server-side in a namespace, as a user would with kubectl."""
        text = (
            manifest
            if isinstance(manifest, str)
            else yaml.safe_dump_all(manifest if isinstance(manifest, list) else [manifest])
        )
        self.kubectl(
            "apply",
            "--server-side",
            "--field-manager",
            "tests",
            "-n",
            namespace,
            "-f",
            "-",
            input=text,
        )


def local_cluster_running() -> bool:
    """Tell whether hack/cluster.sh reports a running, ready local cluster."""
    result = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "status"], capture_output=True, text=True, check=False
    )
    return result.returncode == 0


def start_local_cluster() -> None:
    """Start the local cluster, printing the script's progress so a cold build shows it."""
    subprocess.run(["bash", str(CLUSTER_SCRIPT), "up"], check=True, stdout=subprocess.DEVNULL)


def stop_local_cluster() -> None:
    """Stop the local cluster and remove its state."""
    subprocess.run(["bash", str(CLUSTER_SCRIPT), "down"], check=True)


def restart_local_component(component: str) -> None:
    """Stop one component of the local cluster and start it again with the same ports and data."""
    subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "restart", component], check=True, capture_output=True
    )
