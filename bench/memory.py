"""Memory: the operator's resident set size after 0, 100, 500 and 1,000 ApiServices are Ready.

ApiServices are the minimal example, so every child exists: 13 objects and 6 pods each. They go
into namespaces of 100, each namespace in one kubectl call, and each level is measured once all
of its ApiServices are Ready and the operator has run no reconcile pass for 10 s. The RSS comes
from the operator's process_resident_memory_bytes and from /proc/<pid>/status (VmRSS, and VmHWM
for the peak), and /usr/bin/time -v reports the peak again when the operator stops.

A level that is not Ready within --timeout ends the run: the figures up to it are printed, with
the number of ApiServices that were Ready when time ran out.

    .venv/bin/python bench/memory.py --levels 0 100 500 1000
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from harness import (
    PODS_PER_APISERVICE,
    Cluster,
    OperatorProcess,
    WaitTimeoutError,
    add_common_arguments,
    apiservice_names,
    example_apiservice,
    is_ready_at_generation,
    log,
    machine_summary,
    median,
    metric_sum,
    print_table,
    source_revision,
    stop_on_sigterm,
    wait_until,
    write_json,
)

PER_NAMESPACE = 100
MIB = 1024 * 1024


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--levels",
        type=int,
        nargs="+",
        default=[0, 100, 500, 1000],
        metavar="N",
        help="Numbers of Ready ApiServices at which to measure, ascending (default: 0 100 500 "
        "1000).",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1200,
        help="Seconds one level may take to become Ready before the run stops (default: 1200).",
    )
    add_common_arguments(parser)
    return parser.parse_args()


def namespace_of(index: int) -> str:
    """Return the namespace of the ApiService numbered `index`."""
    return f"bench-mem-{index // PER_NAMESPACE:02d}"


def create_apiservices(cluster: Cluster, start: int, stop: int) -> None:
    """Create the ApiServices numbered from `start` up to `stop`, one kubectl call a namespace."""
    index = start
    while index < stop:
        namespace = namespace_of(index)
        batch_end = min(stop, (index // PER_NAMESPACE + 1) * PER_NAMESPACE)
        if namespace not in cluster.namespaces(namespace):
            cluster.create_namespace(namespace)
        names = apiservice_names(batch_end - index, index)
        cluster.apply([example_apiservice(name) for name in names], namespace)
        index = batch_end


def count_ready_everywhere(cluster: Cluster) -> int:
    """Count the Ready ApiServices in every namespace."""
    items = cluster.get_json("apiservices.apiservice.dev", "--all-namespaces")["items"]
    return sum(1 for item in items if is_ready_at_generation(item, "Ready"))


def cluster_figures(cluster: Cluster) -> dict[str, float]:
    """Read kube-apiserver's RSS, the size of its etcd database and the number of pods.

    kube-apiserver refreshes apiserver_storage_size_bytes only from time to time, so the etcd
    figure may lag by a minute.
    """
    samples = cluster.metrics()
    pods = cluster.kubectl("get", "pods", "--all-namespaces", "-o", "name").stdout.split()
    return {
        "apiserver_rss": metric_sum(samples, "process_resident_memory_bytes"),
        "etcd_bytes": metric_sum(samples, "apiserver_storage_size_bytes"),
        "pods": float(len(pods)),
    }


def measure_level(
    cluster: Cluster, operator: OperatorProcess, level: int, started: float, timeout: float
) -> dict[str, Any]:
    """Wait until `level` ApiServices are Ready, then sample the operator's memory three times.

    `started` is the monotonic time at which the level's ApiServices began to be created.
    """
    progress = {"logged": started}

    def ready() -> bool:
        count = count_ready_everywhere(cluster)
        if time.monotonic() - progress["logged"] >= 30:
            progress["logged"] = time.monotonic()
            rss = operator.rss_bytes()["vm_rss"] / MIB
            log(f"  {count}/{level} Ready after {time.monotonic() - started:.0f}s, RSS {rss:.0f}")
        return count >= level

    result: dict[str, Any] = {"level": level}
    try:
        wait_until(ready, timeout=timeout, interval=5.0, description=f"{level} Ready ApiServices")
        result["ready_seconds"] = time.monotonic() - started
        operator.wait_idle(quiet=10, timeout=timeout)
    except WaitTimeoutError as error:
        log(f"  level {level} did not converge: {error}")
        result["timed_out"] = True
    result["ready"] = count_ready_everywhere(cluster)
    samples = []
    for _ in range(3):
        samples.append(operator.rss_bytes())
        time.sleep(2)
    for key in ("metrics_rss", "vm_rss", "vm_hwm", "cpu_seconds"):
        result[key] = median([sample[key] for sample in samples])
    result.update(cluster_figures(cluster))
    result["load"] = machine_summary()
    return result


def main() -> None:
    """Raise the number of Ready ApiServices level by level and record the operator's RSS."""
    args = parse_args()
    stop_on_sigterm()
    cluster = Cluster()
    cluster.ensure_up()
    operator = OperatorProcess(
        source=args.operator_source,
        kubeconfig=cluster.kubeconfig,
        log_path=cluster.state_dir / "logs" / "bench-memory-operator.log",
    )
    results: list[dict[str, Any]] = []
    time_report: dict[str, str] = {}
    try:
        cluster.cleanup()
        cluster.ensure_pod_capacity(max(args.levels) * PODS_PER_APISERVICE)
        operator.start()
        operator.wait_idle(quiet=5, timeout=60)
        present = 0
        for level in sorted(args.levels):
            log(f"level {level}: creating {level - present} ApiServices")
            started = time.monotonic()
            create_apiservices(cluster, present, level)
            present = level
            result = measure_level(cluster, operator, level, started, args.timeout)
            log(f"  {result}")
            results.append(result)
            if result.get("timed_out"):
                break
        time_report = operator.stop()
    finally:
        operator.stop()
        cluster.cleanup()
        if cluster.started_here and not args.keep_cluster:
            cluster.down()

    print_summary(results, time_report)
    print(f"Operator: {source_revision(args.operator_source)}")
    write_json(args.json, {"levels": results, "time": time_report})


def print_summary(results: list[dict[str, Any]], time_report: dict[str, str]) -> None:
    """Print the RSS per level and the growth per ApiService."""
    base = results[0]["vm_rss"] if results else math.nan
    rows = []
    for result in results:
        level = result["level"]
        growth = (result["vm_rss"] - base) / level / 1024 if level else math.nan
        rows.append(
            [
                level,
                result["ready"],
                result.get("ready_seconds", math.nan),
                result["metrics_rss"] / MIB,
                result["vm_rss"] / MIB,
                result["vm_hwm"] / MIB,
                growth,
                result["cpu_seconds"],
                int(result["pods"]),
                result["etcd_bytes"] / MIB,
                result["apiserver_rss"] / MIB,
            ]
        )
    print_table(
        "Operator memory after N ApiServices are Ready (RSS in MiB)",
        [
            "N",
            "Ready",
            "s to Ready",
            "RSS (metrics)",
            "VmRSS",
            "VmHWM",
            "KiB per ApiService",
            "operator CPU s",
            "pods",
            "etcd MiB",
            "apiserver RSS",
        ],
        rows,
    )
    if time_report:
        peak_kib = float(time_report.get("Maximum resident set size (kbytes)", "nan"))
        print(
            f"\n/usr/bin/time -v of the operator: peak RSS {peak_kib / 1024:.0f} MiB, user "
            f"{time_report.get('User time (seconds)')} s, system "
            f"{time_report.get('System time (seconds)')} s, wall "
            f"{time_report.get('Elapsed (wall clock) time (h:mm:ss or m:ss)')}"
        )
    print(f"\n{machine_summary()}")


if __name__ == "__main__":
    main()
