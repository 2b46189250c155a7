"""Shared parts of the benchmarks: the local cluster, the operator process, waits and tables.

Every benchmark talks to the control plane of hack/cluster.sh through kubectl, runs the operator
as a real process (as `make run` does), and bounds every wait with a deadline. The cluster lives
in $CLUSTER_DIR (default .cluster/), so a benchmark can run beside another engineer's cluster.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import yaml
from prometheus_client.parser import text_string_to_metric_families

from apiservice_operator.model import ApiServiceSpec
from apiservice_operator.reconcile.inputs import check_references
from apiservice_operator.render import (
    Credentials,
    Owner,
    checksum,
    credentials_values,
    render_children,
    render_settings_configmap,
)

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_SCRIPT = ROOT / "hack" / "cluster.sh"
CRD_PATH = ROOT / "crds" / "apiservice.dev_apiservices.yaml"
EXAMPLE_PATH = ROOT / "examples" / "minimal.yaml"
LOCAL_CONTEXT = "apiservice-local"
FIELD_MANAGER = "apiservice-bench"
# Every namespace a benchmark creates starts with this, so cleanup finds leftovers of a crash.
NAMESPACE_PREFIX = "bench-"
# The node that hack/cluster.sh creates accepts 1000 pods, as its kwok stage reports.
PODS_PER_NODE = 1000
# The minimal example runs 6 pods: api (2 replicas), worker, postgres, redis and edge.
PODS_PER_APISERVICE = 6

T = TypeVar("T")
# Prometheus samples keyed by metric name and sorted (label, value) pairs.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def log(message: str) -> None:
    """Print a progress line with the time of day to stderr, so stdout keeps only results."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class WaitTimeoutError(RuntimeError):
    """A condition did not hold before its deadline."""


class KubectlError(RuntimeError):
    """A kubectl command exited with a non-zero status."""


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    description: str,
    interval: float = 0.2,
) -> T:
    """Call `probe` until it returns a truthy value and return it; raise at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except (KubectlError, subprocess.SubprocessError, OSError, ValueError, KeyError) as error:
            value, last = None, error
        else:
            last = value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(
                f"timed out after {timeout:.0f}s waiting for {description}; last: {last!r}"
            )
        time.sleep(interval)


# Cluster access.


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


def cluster_dir() -> Path:
    """Return the folder of the local cluster's state, as hack/cluster.sh resolves it."""
    return Path(os.environ.get("CLUSTER_DIR", ROOT / ".cluster"))


@dataclass
class Cluster:
    """The local control plane of hack/cluster.sh, driven through kubectl."""

    state_dir: Path = field(default_factory=cluster_dir)
    started_here: bool = False

    @property
    def kubeconfig(self) -> Path:
        """Return the admin kubeconfig that hack/cluster.sh writes."""
        return self.state_dir / "kubeconfig"

    @property
    def kubectl_binary(self) -> Path:
        """Return the kubectl built at the cluster's own version."""
        return cache_dir() / "bin" / f"kubernetes-{read_versions()['KUBE_VERSION']}" / "kubectl"

    def script(self, command: str) -> subprocess.CompletedProcess[str]:
        """Run hack/cluster.sh with this cluster's state folder."""
        env = {**os.environ, "CLUSTER_DIR": str(self.state_dir)}
        return subprocess.run(
            ["bash", str(CLUSTER_SCRIPT), command],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )

    def ensure_up(self) -> None:
        """Start the cluster unless it runs, then install the CRD and check it is local."""
        if self.script("status").returncode != 0:
            log(f"starting the local cluster in {self.state_dir}")
            result = self.script("up")
            if result.returncode != 0:
                raise RuntimeError(
                    f"hack/cluster.sh up failed (logs in {self.state_dir}/logs):\n"
                    f"{result.stderr[-3000:]}"
                )
            self.started_here = True
        check_local_context(self.kubeconfig)
        self.kubectl("apply", "--server-side", "--field-manager", FIELD_MANAGER, "-f", CRD_PATH)
        self.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "crd/apiservices.apiservice.dev"
        )

    def down(self) -> None:
        """Stop the cluster and remove its state."""
        log(f"stopping the local cluster in {self.state_dir}")
        self.script("down")

    def kubectl(
        self, *args: str | Path, input: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; a failure raises with its stderr."""
        command = [str(self.kubectl_binary), "--kubeconfig", str(self.kubeconfig)]
        command += [str(arg) for arg in args]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise KubectlError(
                f"kubectl {' '.join(command[3:])} failed with exit code {result.returncode}:\n"
                f"{result.stderr[-3000:]}"
            )
        return result

    def get_json(self, *args: str) -> Any:
        """Return the parsed `kubectl get -o json` output."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, objects: Sequence[dict[str, Any]], namespace: str | None = None) -> float:
        """Server-side apply objects in one kubectl call; return the call's wall seconds."""
        text = yaml.safe_dump_all(objects, sort_keys=False)
        args = ["apply", "--server-side", "--field-manager", FIELD_MANAGER, "-f", "-"]
        if namespace:
            args += ["-n", namespace]
        started = time.monotonic()
        self.kubectl(*args, input=text, timeout=600)
        return time.monotonic() - started

    def metrics(self) -> Samples:
        """Return kube-apiserver's /metrics samples, keyed by name and sorted labels."""
        text = self.kubectl("get", "--raw", "/metrics").stdout
        return parse_metrics(text)

    def controller_manager_metrics(self) -> Samples:
        """Return kube-controller-manager's /metrics samples, read with the admin certificate.

        Its port is the --secure-port on the command line of the pid in $CLUSTER_DIR/pids.
        """
        pid = (self.state_dir / "pids" / "kube-controller-manager").read_text().strip()
        arguments = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
        port = arguments[arguments.index("--secure-port") + 1]
        pki = self.state_dir / "pki"
        # kube-controller-manager serves a self-signed certificate that it made at start.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
        url = f"https://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            return parse_metrics(response.read().decode())

    def create_namespace(self, name: str) -> None:
        """Create a namespace for one benchmark step."""
        self.kubectl("create", "namespace", name)

    def delete_namespaces(self, names: Iterable[str], *, timeout: float = 600) -> None:
        """Delete namespaces and wait until they are gone, and the volumes of their claims too.

        The PersistentVolume controller deletes released volumes some time after their
        namespace is gone, and that work would otherwise fall into the next measurement.
        """
        names = list(names)
        if not names:
            return
        self.kubectl("delete", "namespace", "--wait=false", "--ignore-not-found", *names)
        wait_until(
            lambda: not (set(names) & set(self.namespaces())),
            timeout=timeout,
            interval=1.0,
            description=f"namespaces {', '.join(names)} to be deleted",
        )

        def volumes_gone() -> bool:
            volumes = self.get_json("persistentvolumes")["items"]
            claims = [(v["spec"].get("claimRef") or {}).get("namespace") for v in volumes]
            return not set(names) & set(claims)

        wait_until(
            volumes_gone,
            timeout=timeout,
            interval=2.0,
            description=f"the volumes of namespaces {', '.join(names)} to be deleted",
        )

    def namespaces(self, prefix: str = "") -> list[str]:
        """List the namespaces whose name starts with `prefix`."""
        result = self.kubectl("get", "namespaces", "-o", "name")
        names = [line.removeprefix("namespace/") for line in result.stdout.split()]
        return [name for name in names if name.startswith(prefix)]

    def cleanup(self) -> None:
        """Delete every namespace that a benchmark created, including a crashed run's."""
        leftovers = self.namespaces(NAMESPACE_PREFIX)
        if leftovers:
            log(f"deleting namespaces {', '.join(leftovers)}")
            self.delete_namespaces(leftovers)

    def ensure_pod_capacity(self, pods: int) -> None:
        """Add kwok nodes until the cluster accepts `pods` pods; each node takes 1000."""
        node_count = math.ceil(pods / PODS_PER_NODE) + 1
        nodes = []
        for index in range(node_count):
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": f"kwok-node-{index}",
                        "annotations": {
                            "kwok.x-k8s.io/node": "fake",
                            "node.alpha.kubernetes.io/ttl": "0",
                        },
                        "labels": {
                            "kubernetes.io/hostname": f"kwok-node-{index}",
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "type": "kwok",
                        },
                    },
                }
            )
        self.apply(nodes)

        def all_ready() -> bool:
            items = self.get_json("nodes")["items"]
            ready = [
                node
                for node in items
                for condition in node.get("status", {}).get("conditions", [])
                if condition["type"] == "Ready" and condition["status"] == "True"
            ]
            return len(ready) >= node_count

        wait_until(all_ready, timeout=120, interval=1.0, description=f"{node_count} Ready nodes")


def check_local_context(kubeconfig: Path) -> None:
    """Raise unless the kubeconfig points at the local cluster on 127.0.0.1.

    Benchmarks create and delete namespaces freely, so they must never reach a real cluster.
    """
    config = yaml.safe_load(kubeconfig.read_text())
    if config.get("current-context") != LOCAL_CONTEXT:
        raise RuntimeError(f"kubeconfig {kubeconfig} is not the local cluster {LOCAL_CONTEXT!r}")
    for cluster in config["clusters"]:
        host = urlparse(cluster["cluster"]["server"]).hostname
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise RuntimeError(f"kubeconfig {kubeconfig} points at {host}, not at 127.0.0.1")


# Readiness of ApiServices and Deployments, read from one list call per namespace.


def is_ready_at_generation(obj: dict[str, Any], condition_type: str) -> bool:
    """Tell whether a condition is True for the object's current generation.

    The ApiService's conditions carry observedGeneration; a Deployment reports it in its status.
    """
    generation = obj["metadata"].get("generation")
    status = obj.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") != condition_type or condition.get("status") != "True":
            continue
        observed = condition.get("observedGeneration", status.get("observedGeneration"))
        return bool(observed == generation)
    return False


def count_ready(cluster: Cluster, namespace: str) -> int:
    """Count the ApiServices of a namespace that are Ready at their current generation."""
    items = cluster.get_json("apiservices.apiservice.dev", "-n", namespace)["items"]
    return sum(1 for item in items if is_ready_at_generation(item, "Ready"))


def count_available(cluster: Cluster, namespace: str) -> int:
    """Count the Deployments of a namespace that are Available at their current generation."""
    items = cluster.get_json("deployments", "-n", namespace)["items"]
    return sum(1 for item in items if is_ready_at_generation(item, "Available"))


# What the benchmarks create: ApiServices from the minimal example, or their rendered children.


def apiservice_names(count: int, start: int = 0) -> list[str]:
    """Return `count` ApiService names, numbered from `start`."""
    return [f"svc-{index:04d}" for index in range(start, start + count)]


def example_apiservice(name: str) -> dict[str, Any]:
    """Return examples/minimal.yaml under another name."""
    manifest = dict(yaml.safe_load(EXAMPLE_PATH.read_text()))
    manifest["metadata"] = {"name": name}
    return manifest


def render_stack(name: str, namespace: str) -> list[dict[str, Any]]:
    """Render every child of the minimal example as a chart would: with no owner.

    The render layer's ownerReferences are removed, because no ApiService exists for the garbage
    collector to find. The credentials are fixed values, and the pods' inputs checksum is
    computed as a reconcile pass computes it.
    """
    spec = ApiServiceSpec.model_validate(yaml.safe_load(EXAMPLE_PATH.read_text())["spec"])
    owner = Owner(name=name, namespace=namespace, uid="00000000-0000-0000-0000-000000000000")
    credentials = Credentials(
        postgres_password="bench-postgres-password",
        redis_password="bench-redis-password",
        jwt_secret="bench-jwt-secret",
    )
    settings = render_settings_configmap(owner, spec)
    references = check_references(namespace, spec, {})
    inputs_checksum = checksum(
        settings.get("data") or {}, credentials_values(owner, spec, credentials), references
    )
    children = render_children(owner, spec, credentials, inputs_checksum)
    for child in children:
        child["metadata"].pop("ownerReferences", None)
    return children


# The operator as a real process.


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OperatorProcess:
    """One operator process under /usr/bin/time -v, which records its peak RSS and CPU time.

    `kubeconfig` chooses the user it runs as, `source` the folder that contains the
    apiservice_operator package, and `environment` adds variables such as
    APISERVICE_OPERATOR_RESYNC_SECONDS.
    """

    kubeconfig: Path
    log_path: Path
    source: Path = ROOT / "operator"
    environment: dict[str, str] = field(default_factory=dict)
    metrics_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    time_report: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60) -> None:
        """Start the operator and wait until its health endpoint returns 200."""
        env = {
            **os.environ,
            **self.environment,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONPATH": str(self.source),
        }
        self.time_report = self.log_path.with_suffix(".time.txt")
        log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                "/usr/bin/time",
                "-v",
                "-o",
                str(self.time_report),
                sys.executable,
                "-m",
                "apiservice_operator",
                "--log-format",
                "json",
                "--metrics-port",
                str(self.metrics_port),
                "--health-port",
                str(self.health_port),
            ],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()
        wait_until(self.healthy, timeout=timeout, interval=0.2, description="operator /healthz")

    @property
    def pid(self) -> int:
        """Return the operator's own pid: the only child of /usr/bin/time."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return int(children.read_text().split()[0])

    def healthy(self) -> bool:
        """Tell whether /healthz returns 200; raise when the process has exited."""
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the operator exited with {self.process.returncode}:\n{tail}")
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)

    def metrics(self) -> Samples:
        """Return the operator's /metrics samples, keyed by name and sorted labels."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return parse_metrics(response.read().decode())

    def rss_bytes(self) -> dict[str, float]:
        """Return the resident set size now, from /metrics and /proc, and the peak so far."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        metrics = self.metrics()
        return {
            "metrics_rss": metric_sum(metrics, "process_resident_memory_bytes"),
            "vm_rss": float(fields["VmRSS"].split()[0]) * 1024,
            "vm_hwm": float(fields["VmHWM"].split()[0]) * 1024,
            "cpu_seconds": metric_sum(metrics, "process_cpu_seconds_total"),
        }

    def reconciles(self) -> float:
        """Return the number of reconcile passes so far, of every result."""
        return metric_sum(self.metrics(), "apiservice_operator_reconciles_total")

    def wait_idle(self, *, quiet: float = 10, timeout: float = 300) -> None:
        """Wait until no reconcile pass has run for `quiet` seconds."""
        state = {"count": self.reconciles(), "since": time.monotonic()}

        def idle() -> bool:
            count = self.reconciles()
            if count != state["count"]:
                state["count"], state["since"] = count, time.monotonic()
            return time.monotonic() - state["since"] >= quiet

        wait_until(idle, timeout=timeout, interval=1.0, description="the operator to go idle")

    def stop(self) -> dict[str, str]:
        """Stop the operator with SIGTERM; return the figures of /usr/bin/time -v."""
        if self.process is None or self.process.poll() is not None:
            return {}
        try:
            os.kill(self.pid, signal.SIGTERM)
        except (OSError, IndexError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        return read_time_report(self.time_report)


def read_time_report(path: Path | None) -> dict[str, str]:
    """Parse the `name: value` lines that /usr/bin/time -v writes."""
    if path is None or not path.exists():
        return {}
    report = {}
    for line in path.read_text().splitlines():
        name, _, value = line.strip().rpartition(": ")
        if name:
            report[name] = value
    return report


# Prometheus text.


def parse_metrics(text: str) -> Samples:
    """Parse Prometheus text into samples keyed by name and sorted label pairs."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def metric_sum(samples: Samples, name: str, **labels: str) -> float:
    """Add up the samples of one metric whose labels include `labels`."""
    total = 0.0
    for (sample_name, pairs), value in samples.items():
        if sample_name == name and all(dict(pairs).get(k) == v for k, v in labels.items()):
            total += value
    return total


# Results.


def median(values: Sequence[float]) -> float:
    """Return the median as a float, or NaN for no values."""
    return float(statistics.median(values)) if values else math.nan


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a Markdown table, so the summary can go into docs/benchmarks.md as it is."""
    cells = [[format_cell(value) for value in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(f"\n{title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def format_cell(value: object) -> str:
    """Format floats with two decimals and everything else as text."""
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def machine_summary() -> str:
    """Describe the machine and the load on it, for the record under each table."""
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    versions = read_versions()
    return (
        f"{os.cpu_count()} CPUs, {memory_kib / 1024**2:.1f} GiB, Python "
        f"{platform.python_version()}, Kubernetes {versions['KUBE_VERSION']}, etcd "
        f"{versions['ETCD_VERSION']}, kwok {versions['KWOK_VERSION']}; load average {load}"
    )


def source_revision(source: Path) -> str:
    """Describe the operator code that runs: a git commit, and whether it has local changes."""
    if not (source / ".git").exists() and source.resolve() != (ROOT / "operator").resolve():
        return f"the package in {source}"
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    changes = subprocess.run(
        [*git, "status", "--porcelain", "--", "operator"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"commit {commit}" + (" with uncommitted changes in operator/" if changes else "")


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so `finally` blocks stop the operator and clean up."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options every benchmark takes."""
    parser.add_argument(
        "--operator-source",
        type=Path,
        default=ROOT / "operator",
        metavar="DIR",
        help="Folder that contains the apiservice_operator package to run (default: operator/). "
        "To measure a fixed revision: git archive REV operator | tar -x -C DIR, then pass "
        "DIR/operator.",
    )
    parser.add_argument(
        "--keep-cluster",
        action="store_true",
        help="Leave the local cluster running at the end, even when this run started it.",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="Also write the raw results to this JSON file.",
    )


def write_json(path: Path | None, results: object) -> None:
    """Write the raw results when --json was given."""
    if path is not None:
        path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        log(f"wrote {path}")
