"""Idle API traffic: requests the operator sends while K ApiServices are Ready and nothing changes.

kube-apiserver's `apiserver_request_total` has no label for the client, and the scheduler, the
controller-manager and kwok send requests of their own. The benchmark therefore counts in two
ways, both from kube-apiserver's /metrics:

* exact: the operator runs as its own user, whose requests three FlowSchemas sort by verb
  (writes, reads, watches; a fourth takes anything else). They all use the built-in `exempt`
  priority level, so nothing is queued or throttled, and
  `apiserver_flowcontrol_dispatched_requests_total` counts each schema's requests;
* by difference: `apiserver_request_total` by verb over windows with the operator running, minus
  the median of equal windows after the operator has stopped.

A watch is a long-running request and is counted once, when it starts. Kopf reopens each watch
after its server timeout (300 s in the operator's startup handler) from the last resource
version, without a new list. The operator also runs a periodic resync pass (every 600 s unless
--resync-seconds is given), which should cost no request while every child is as rendered.

    .venv/bin/python bench/idle_traffic.py --counts 10 50 --window 60 --windows 3
    .venv/bin/python bench/idle_traffic.py --counts 10 --window 330 --windows 1 --resync-seconds 60
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from harness import (
    PODS_PER_APISERVICE,
    Cluster,
    OperatorProcess,
    Samples,
    add_common_arguments,
    apiservice_names,
    count_ready,
    example_apiservice,
    log,
    machine_summary,
    median,
    print_table,
    source_revision,
    stop_on_sigterm,
    wait_until,
    write_json,
)

NAMESPACE = "bench-idle"
OPERATOR_USER = "apiservice-operator-bench"
# FlowSchema name -> the verbs it matches, in the order the table shows them.
FLOW_SCHEMAS = {
    "bench-operator-writes": ["create", "update", "patch", "delete", "deletecollection"],
    "bench-operator-reads": ["get", "list"],
    "bench-operator-watches": ["watch"],
}
OTHER_FLOW_SCHEMA = "bench-operator-other"
# apiserver_request_total reports server-side apply as APPLY and a watch as WATCH.
WRITE_VERBS = {"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"}
READ_VERBS = {"GET", "LIST"}
WATCH_VERBS = {"WATCH"}


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--counts",
        type=int,
        nargs="+",
        default=[10, 50],
        metavar="K",
        help="Numbers of Ready ApiServices during the idle windows, ascending (default: 10 50).",
    )
    parser.add_argument(
        "--window", type=float, default=60, help="Seconds of one idle window (default: 60)."
    )
    parser.add_argument(
        "--windows",
        type=int,
        default=3,
        help="Windows with the operator and as many without it, for each K (default: 3).",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600,
        help="Seconds to wait for the ApiServices to become Ready (default: 600).",
    )
    parser.add_argument(
        "--resync-seconds",
        type=float,
        help="Run the operator with this periodic resync interval, so that the windows include "
        "resync passes (default: the operator's own).",
    )
    add_common_arguments(parser)
    return parser.parse_args()


def issue_identity(cluster: Cluster) -> Path:
    """Issue a client certificate for the operator's own user; return its kubeconfig.

    The certificate is signed by the local cluster's CA in $CLUSTER_DIR/pki, and the user is
    bound to cluster-admin, as the admin user of the default kubeconfig is by its group.
    """
    pki = cluster.state_dir / "pki"
    key, csr, crt = (pki / f"{OPERATOR_USER}.{suffix}" for suffix in ("key", "csr", "crt"))
    extensions = pki / f"{OPERATOR_USER}.ext"
    extensions.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=clientAuth\n"
    )
    openssl = ["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes"]
    openssl += ["-keyout", str(key), "-subj", f"/CN={OPERATOR_USER}", "-out", str(csr)]
    subprocess.run(openssl, check=True, capture_output=True)
    signing = ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt")]
    signing += ["-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "2", "-sha256"]
    signing += ["-extfile", str(extensions), "-out", str(crt)]
    subprocess.run(signing, check=True, capture_output=True)

    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for user in config["users"]:
        user["user"] = {"client-certificate": str(crt), "client-key": str(key)}
    kubeconfig = cluster.state_dir / f"{OPERATOR_USER}.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))

    subject = {"kind": "User", "user": {"name": OPERATOR_USER}}
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": OPERATOR_USER},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": OPERATOR_USER}
            ],
        }
    ]
    for name, verbs in FLOW_SCHEMAS.items():
        objects.append(flow_schema(name, 50, subject, verbs, ["get"] if "get" in verbs else []))
    objects.append(flow_schema(OTHER_FLOW_SCHEMA, 60, subject, ["*"], ["*"]))
    cluster.apply(objects)
    return kubeconfig


def flow_schema(
    name: str,
    precedence: int,
    subject: dict[str, Any],
    verbs: list[str],
    non_resource_verbs: list[str],
) -> dict[str, Any]:
    """Build a FlowSchema that sends the operator user's requests to the exempt level."""
    rule: dict[str, Any] = {
        "subjects": [subject],
        "resourceRules": [
            {
                "verbs": verbs,
                "apiGroups": ["*"],
                "resources": ["*"],
                "clusterScope": True,
                "namespaces": ["*"],
            }
        ],
    }
    if non_resource_verbs:
        rule["nonResourceRules"] = [{"verbs": non_resource_verbs, "nonResourceURLs": ["*"]}]
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": name},
        "spec": {
            "matchingPrecedence": precedence,
            "priorityLevelConfiguration": {"name": "exempt"},
            "rules": [rule],
        },
    }


def exact_counts(before: Samples, after: Samples) -> dict[str, float]:
    """Count the operator user's requests between two snapshots, by FlowSchema."""
    counts = {}
    for name in [*FLOW_SCHEMAS, OTHER_FLOW_SCHEMA]:
        key = (
            "apiserver_flowcontrol_dispatched_requests_total",
            (("flow_schema", name), ("priority_level", "exempt")),
        )
        counts[name] = after.get(key, 0.0) - before.get(key, 0.0)
    return counts


def request_counts(before: Samples, after: Samples) -> Counter[tuple[str, str]]:
    """Count every client's requests between two snapshots, by verb and resource.group."""
    counts: Counter[tuple[str, str]] = Counter()
    for (name, pairs), value in after.items():
        if name != "apiserver_request_total":
            continue
        labels = dict(pairs)
        resource = ".".join(part for part in (labels.get("resource"), labels.get("group")) if part)
        if labels.get("subresource"):
            resource = f"{resource}/{labels['subresource']}" if resource else labels["subresource"]
        delta = value - before.get((name, pairs), 0.0)
        if delta:
            counts[(labels["verb"], resource)] += delta
    return counts


def by_verb_group(counts: Counter[tuple[str, str]]) -> dict[str, float]:
    """Add up request counts into writes, reads and watches."""
    groups = {"writes": 0.0, "reads": 0.0, "watches": 0.0}
    for (verb, _), value in counts.items():
        if verb in WRITE_VERBS:
            groups["writes"] += value
        elif verb in READ_VERBS:
            groups["reads"] += value
        elif verb in WATCH_VERBS:
            groups["watches"] += value
    return groups


def measure_window(
    cluster: Cluster, seconds: float, operator: OperatorProcess | None
) -> dict[str, Any]:
    """Snapshot kube-apiserver's metrics, sleep through the window, and count the requests.

    With a running `operator`, also count its reconcile passes, which shows that resync passes
    ran in the window.
    """
    passes_before = operator.reconciles() if operator else 0.0
    before = cluster.metrics()
    time.sleep(seconds)
    after = cluster.metrics()
    passes = operator.reconciles() - passes_before if operator else 0.0
    counts = request_counts(before, after)
    return {
        "exact": exact_counts(before, after),
        "groups": by_verb_group(counts),
        "requests": {f"{verb} {resource}": value for (verb, resource), value in counts.items()},
        "reconciles": passes,
    }


def wait_ready(cluster: Cluster, count: int, timeout: float) -> None:
    """Wait until `count` ApiServices of the namespace are Ready."""
    wait_until(
        lambda: count_ready(cluster, NAMESPACE) == count,
        timeout=timeout,
        interval=1.0,
        description=f"{count} Ready ApiServices in {NAMESPACE}",
    )


def main() -> None:
    """Measure idle windows with and without the operator for each K."""
    args = parse_args()
    stop_on_sigterm()
    cluster = Cluster()
    cluster.ensure_up()
    cluster.cleanup()
    cluster.ensure_pod_capacity(max(args.counts) * PODS_PER_APISERVICE)
    kubeconfig = issue_identity(cluster)
    environment = {}
    if args.resync_seconds is not None:
        environment["APISERVICE_OPERATOR_RESYNC_SECONDS"] = str(args.resync_seconds)
    operator = OperatorProcess(
        source=args.operator_source,
        environment=environment,
        kubeconfig=kubeconfig,
        log_path=cluster.state_dir / "logs" / "bench-idle-operator.log",
    )
    results: list[dict[str, Any]] = []
    try:
        cluster.create_namespace(NAMESPACE)
        present = 0
        for count in sorted(args.counts):
            before_start = cluster.metrics()
            operator.start()
            if present:
                # The operator resumes the ApiServices of the previous K: count what that costs.
                wait_ready(cluster, present, args.timeout)
                operator.wait_idle(quiet=15)
                restart = exact_counts(before_start, cluster.metrics())
                log(f"restart with {present} Ready ApiServices: {restart}")
                results.append({"kind": "restart", "count": present, "exact": restart})
            objects = [example_apiservice(n) for n in apiservice_names(count - present, present)]
            cluster.apply(objects, NAMESPACE)
            present = count
            wait_ready(cluster, count, args.timeout)
            operator.wait_idle(quiet=15)
            for arm in ("operator", "baseline"):
                if arm == "baseline":
                    operator.stop()
                    time.sleep(5)
                for index in range(args.windows):
                    log(f"K={count}: {arm} window {index + 1}/{args.windows} ({args.window:.0f}s)")
                    running = operator if arm == "operator" else None
                    window = measure_window(cluster, args.window, running)
                    log(f"  exact {window['exact']}, all clients {window['groups']}")
                    log(f"  reconcile passes {window['reconciles']:.0f}")
                    window.update(kind=arm, count=count, load=machine_summary())
                    results.append(window)
    finally:
        operator.stop()
        cluster.cleanup()
        cluster.kubectl(
            "delete", "flowschemas", *FLOW_SCHEMAS, OTHER_FLOW_SCHEMA, "--ignore-not-found"
        )
        cluster.kubectl("delete", "clusterrolebinding", OPERATOR_USER, "--ignore-not-found")
        if cluster.started_here and not args.keep_cluster:
            cluster.down()

    print_summary(args, results)
    write_json(args.json, results)


def print_summary(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    """Print the exact and the by-difference counts per window, as medians over the windows."""
    rows = []
    detail_rows = []
    for count in sorted(args.counts):
        windows = {
            arm: [r for r in results if r["kind"] == arm and r["count"] == count]
            for arm in ("operator", "baseline")
        }
        row: list[object] = [count, f"{args.window:.0f}", len(windows["operator"])]
        row.append(median([w.get("reconciles", 0.0) for w in windows["operator"]]))
        for name in FLOW_SCHEMAS:
            row.append(median([w["exact"][name] for w in windows["operator"]]))
        for group in ("writes", "reads", "watches"):
            with_operator = median([w["groups"][group] for w in windows["operator"]])
            without = median([w["groups"][group] for w in windows["baseline"]])
            row.append(f"{with_operator:.0f} - {without:.0f} = {with_operator - without:+.0f}")
        rows.append(row)

        keys = {key for arm in windows.values() for w in arm for key in w["requests"]}
        for key in sorted(keys):
            with_operator = median([w["requests"].get(key, 0.0) for w in windows["operator"]])
            without = median([w["requests"].get(key, 0.0) for w in windows["baseline"]])
            if with_operator != without:
                detail_rows.append([count, key, with_operator, without, with_operator - without])

    print_table(
        "Idle API requests per window (medians): the operator's own (exact), and all clients' "
        "with the operator minus without it",
        [
            "K",
            "window s",
            "windows",
            "reconcile passes",
            "operator writes",
            "operator reads",
            "operator watches",
            "all writes",
            "all reads",
            "all watches",
        ],
        rows,
    )
    print_table(
        "Requests whose median differs with and without the operator (all clients)",
        ["K", "verb resource", "with operator", "without", "difference"],
        detail_rows,
    )
    restarts = [r for r in results if r["kind"] == "restart"]
    if restarts:
        print_table(
            "Requests of an operator restart until idle (exact)",
            ["Ready ApiServices", *FLOW_SCHEMAS, OTHER_FLOW_SCHEMA],
            [[r["count"], *r["exact"].values()] for r in restarts],
        )
    print(f"\n{machine_summary()}")
    print(f"Operator: {source_revision(args.operator_source)}")


if __name__ == "__main__":
    main()
