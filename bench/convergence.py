"""Convergence: N ApiServices created at once until all are Ready, against a plain apply.

Two arms run in turn, in a new namespace each time:

* operator: one `kubectl apply --server-side` of N ApiServices (the minimal example under N
  names), then the time until every one is Ready at its current generation;
* kubectl: the same children rendered by the render layer for each name, without owner
  references, applied with one `kubectl apply --server-side` as a Helm chart would apply them,
  then the time until every Deployment is Available at its current generation.

The operator runs only during its own arm and is started before the clock starts, so neither arm
pays for the other's work. Both arms are timed from just before their kubectl call, and both poll
one list call per namespace every 0.25 s, so the figures have a resolution of about 0.3 s.

Besides the time to Ready, the summary shows when the operator had created every child, which is
the point a plain apply reaches when kubectl returns. It also shows the operator's CPU time and
how long kube-controller-manager's clients waited for their rate limiter during each arm.

    .venv/bin/python bench/convergence.py --counts 10 50 --runs 3
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from harness import (
    PODS_PER_APISERVICE,
    Cluster,
    OperatorProcess,
    add_common_arguments,
    apiservice_names,
    count_available,
    count_ready,
    example_apiservice,
    log,
    machine_summary,
    median,
    metric_sum,
    print_table,
    render_stack,
    source_revision,
    stop_on_sigterm,
    wait_until,
    write_json,
)

DEPLOYMENTS_PER_APISERVICE = 5


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--counts",
        type=int,
        nargs="+",
        default=[10, 50],
        metavar="N",
        help="Numbers of ApiServices created at once (default: 10 50).",
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="Runs of each arm for each N (default: 3)."
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600,
        help="Seconds one arm may take to converge before the run fails (default: 600).",
    )
    add_common_arguments(parser)
    return parser.parse_args()


def run_operator_arm(
    cluster: Cluster, operator: OperatorProcess, count: int, namespace: str, timeout: float
) -> dict[str, Any]:
    """Apply `count` ApiServices and time them until all are Ready."""
    operator.start()
    operator.wait_idle(quiet=3, timeout=60)
    try:
        cluster.create_namespace(namespace)
        objects = [example_apiservice(name) for name in apiservice_names(count)]
        cpu_before = metric_sum(operator.metrics(), "process_cpu_seconds_total")
        throttled_before = rate_limiter_wait(cluster)
        started = time.monotonic()
        apply_seconds = cluster.apply(objects, namespace)
        # The operator creates each ApiService's Deployments after its other children, so once
        # every Deployment exists, every child does: the point a plain apply reaches on return.
        deployments = count * DEPLOYMENTS_PER_APISERVICE
        wait_until(
            lambda: len(cluster.get_json("deployments", "-n", namespace)["items"]) == deployments,
            timeout=timeout,
            interval=0.25,
            description=f"{deployments} Deployments in {namespace}",
        )
        children_seconds = time.monotonic() - started
        wait_until(
            lambda: count_ready(cluster, namespace) == count,
            timeout=timeout,
            interval=0.25,
            description=f"{count} Ready ApiServices in {namespace}",
        )
        seconds = time.monotonic() - started
        cpu = metric_sum(operator.metrics(), "process_cpu_seconds_total") - cpu_before
        throttled = rate_limiter_wait(cluster) - throttled_before
    finally:
        operator.stop()
    return {
        "seconds": seconds,
        "apply_seconds": apply_seconds,
        "children_seconds": children_seconds,
        "operator_cpu_seconds": cpu,
        "rate_limiter_wait_seconds": throttled,
    }


def run_kubectl_arm(cluster: Cluster, count: int, namespace: str, timeout: float) -> dict[str, Any]:
    """Apply the rendered children of `count` ApiServices and time them until Available."""
    cluster.create_namespace(namespace)
    objects = [child for name in apiservice_names(count) for child in render_stack(name, namespace)]
    deployments = count * DEPLOYMENTS_PER_APISERVICE
    throttled_before = rate_limiter_wait(cluster)
    started = time.monotonic()
    apply_seconds = cluster.apply(objects, namespace)
    wait_until(
        lambda: count_available(cluster, namespace) == deployments,
        timeout=timeout,
        interval=0.25,
        description=f"{deployments} Available Deployments in {namespace}",
    )
    seconds = time.monotonic() - started
    return {
        "seconds": seconds,
        "apply_seconds": apply_seconds,
        "objects": len(objects),
        "rate_limiter_wait_seconds": rate_limiter_wait(cluster) - throttled_before,
    }


def rate_limiter_wait(cluster: Cluster) -> float:
    """Return the seconds kube-controller-manager's clients have waited for their rate limiter.

    Its clients are limited to 20 requests per second by default (--kube-api-qps), and many
    requests wait at the same time, so the sum can grow faster than the wall clock.
    """
    samples = cluster.controller_manager_metrics()
    return metric_sum(samples, "rest_client_rate_limiter_duration_seconds_sum")


def main() -> None:
    """Run both arms for every N and print the medians and their ratio."""
    args = parse_args()
    stop_on_sigterm()
    cluster = Cluster()
    cluster.ensure_up()
    operator = OperatorProcess(
        source=args.operator_source,
        kubeconfig=cluster.kubeconfig,
        log_path=cluster.state_dir / "logs" / "bench-convergence-operator.log",
    )
    trials: list[dict[str, Any]] = []
    try:
        cluster.cleanup()
        cluster.ensure_pod_capacity(max(args.counts) * PODS_PER_APISERVICE)
        for run in range(args.runs):
            for count in args.counts:
                # Alternate which arm goes first, so a drift in the machine's speed is shared.
                arms = ["operator", "kubectl"] if run % 2 == 0 else ["kubectl", "operator"]
                for arm in arms:
                    namespace = f"bench-conv-{arm}-{count}-{run}"
                    log(f"run {run + 1}/{args.runs}: {arm} arm, N={count}")
                    if arm == "operator":
                        result = run_operator_arm(cluster, operator, count, namespace, args.timeout)
                    else:
                        result = run_kubectl_arm(cluster, count, namespace, args.timeout)
                    result.update(arm=arm, count=count, run=run, load=machine_summary())
                    log(f"  {result['seconds']:.2f}s")
                    trials.append(result)
                    cluster.delete_namespaces([namespace])
    finally:
        operator.stop()
        cluster.cleanup()
        if cluster.started_here and not args.keep_cluster:
            cluster.down()

    rows = []
    for count in args.counts:
        by_arm = {
            arm: [t for t in trials if t["count"] == count and t["arm"] == arm]
            for arm in ("operator", "kubectl")
        }
        operator_seconds = [t["seconds"] for t in by_arm["operator"]]
        kubectl_seconds = [t["seconds"] for t in by_arm["kubectl"]]
        rows.append(
            [
                count,
                len(operator_seconds),
                median(operator_seconds),
                f"{min(operator_seconds):.2f}-{max(operator_seconds):.2f}",
                median(kubectl_seconds),
                f"{min(kubectl_seconds):.2f}-{max(kubectl_seconds):.2f}",
                median(operator_seconds) / median(kubectl_seconds),
                median([t["children_seconds"] for t in by_arm["operator"]]),
                median([t["apply_seconds"] for t in by_arm["kubectl"]]),
                median([t["operator_cpu_seconds"] for t in by_arm["operator"]]),
                median([t["rate_limiter_wait_seconds"] for t in by_arm["operator"]]),
                median([t["rate_limiter_wait_seconds"] for t in by_arm["kubectl"]]),
            ]
        )
    print_table(
        "Convergence: seconds from the kubectl call until all Ready (median of the runs)",
        [
            "N",
            "runs",
            "operator s",
            "operator range",
            "kubectl s",
            "kubectl range",
            "ratio",
            "all children s (operator)",
            "apply s (kubectl)",
            "operator CPU s",
            "KCM throttled s (operator)",
            "KCM throttled s (kubectl)",
        ],
        rows,
    )
    print(f"\n{machine_summary()}")
    print(f"Operator: {source_revision(args.operator_source)}")
    write_json(args.json, trials)


if __name__ == "__main__":
    main()
