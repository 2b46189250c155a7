"""Fixtures of the cluster tier: a real control plane, a fresh namespace per test, the CRD.

The session uses the local control plane from hack/cluster.sh: it reuses one that already runs
and otherwise starts one (building the binaries on first use) and stops it at the end. With
`--kind` it uses a kind cluster through pytest-kind instead, which needs a Docker engine.
Every cluster test refuses any kubeconfig context other than this local one.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import (
    CRD_PATH,
    LOCAL_KUBECONFIG,
    Cluster,
    check_local_context,
    local_cluster_running,
    start_local_cluster,
    stop_local_cluster,
)
from tests.support.operator import OperatorProcess


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/cluster/ needs the cluster, so it carries the marker that selects it.
    for item in items:
        if "tests/cluster/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.cluster)


def docker_engine_running() -> bool:
    """Tell whether a Docker engine responds, which kind needs to create its node container."""
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(["docker", "info"], capture_output=True, check=False)
    return result.returncode == 0


def kind_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Yield a kind cluster from pytest-kind, or skip when no Docker engine runs."""
    if not docker_engine_running():
        pytest.skip("--kind needs a running Docker engine, and `docker info` found none")
    from pytest_kind import KindCluster  # imported here: it is only needed on this path

    kind = KindCluster("apiservice-operator-tests")
    kind.create()
    try:
        yield Cluster(kubeconfig=Path(kind.kubeconfig_path))
    finally:
        kind.delete()


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Yield the cluster that this session tests against."""
    if request.config.getoption("--kind"):
        yield from kind_cluster(request)
        return

    started_here = not local_cluster_running()
    if started_here:
        start_local_cluster()
    check_local_context(LOCAL_KUBECONFIG)
    try:
        yield Cluster(kubeconfig=LOCAL_KUBECONFIG)
    finally:
        if started_here:
            stop_local_cluster()


def namespace_name(test_name: str) -> str:
    """Build a unique, valid namespace name that still shows which test made it."""
    stem = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"t-{stem}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """Yield a fresh namespace for one test and delete it afterwards."""
    name = namespace_name(request.node.name)
    cluster.kubectl("create", "namespace", name)
    # The service account controller creates "default" asynchronously, and pods need it.
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=30s")
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def crd_installed(cluster: Cluster) -> Path:
    """Install the ApiService CRD server-side and wait until the API server serves it."""
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        "tests",
        "-f",
        str(CRD_PATH),
    )
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/apiservices.apiservice.dev",
    )
    return CRD_PATH


@pytest.fixture(scope="session")
def operator(
    cluster: Cluster, crd_installed: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """Run one operator process for the session; tests that restart or kill it start it again."""
    stop_demo_operator()
    process = OperatorProcess(cluster=cluster, log_path=tmp_path_factory.mktemp("operator") / "log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def running_operator(operator: OperatorProcess) -> OperatorProcess:
    """Return the session's operator, started again if an earlier test stopped it."""
    if operator.process is None or operator.process.poll() is not None:
        operator.start()
    return operator


def stop_demo_operator() -> None:
    """Stop the operator that `make demo` left running on the local cluster.

    Two operators on one cluster would both reconcile every ApiService, and the tests could not
    tell which one acted.
    """
    pid_file = LOCAL_KUBECONFIG.parent / "pids" / "operator"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    else:
        print(f"stopped the demo operator (pid {pid}) so the tests run their own")
    pid_file.unlink()
