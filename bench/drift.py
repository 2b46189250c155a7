"""Drift reaction: time until the operator restores a deleted Service or a changed replica count.

Two kinds of drift, each sampled --samples times on the first of --apiservices Ready
ApiServices:

* the api Service is deleted;
* the worker Deployment's spec.replicas is merge-patched by another field manager, as
  `kubectl scale` would change it.

Each sample is timed from just before the delete or patch request until a GET shows the restored
object (a new uid, or the rendered replica count again). The GETs run in this process every
--interval seconds, so the resolution is about that interval plus one request. Between samples
the benchmark waits until the ApiService is Ready and the operator has been idle for 2 s.

    .venv/bin/python bench/drift.py --samples 10
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from harness import (
    Cluster,
    OperatorProcess,
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
from lightkube import ApiError, Client
from lightkube.config.kubeconfig import KubeConfig
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

NAMESPACE = "bench-drift"
DRIFT_FIELD_MANAGER = "bench-drift"


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--samples", type=int, default=10, help="Samples of each kind of drift (default: 10)."
    )
    parser.add_argument(
        "--apiservices",
        type=int,
        default=10,
        help="Ready ApiServices in the namespace; drift hits the first one (default: 10).",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=0.01,
        help="Seconds between the GETs that look for the restored object (default: 0.01).",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60,
        help="Seconds to wait for one restore before the run fails (default: 60).",
    )
    add_common_arguments(parser)
    return parser.parse_args()


def get_or_none(client: Client, resource: Any, name: str) -> Any:
    """Read an object, or return None while it does not exist."""
    try:
        return client.get(resource, name, namespace=NAMESPACE)
    except ApiError as error:
        if error.status.code == 404:
            return None
        raise


def time_restore(
    change: Callable[[], None], restored: Callable[[], bool], *, interval: float, timeout: float
) -> float:
    """Make a change and return the seconds until `restored` holds."""
    started = time.monotonic()
    change()
    wait_until(restored, timeout=timeout, interval=interval, description="the operator's repair")
    return time.monotonic() - started


def delete_service_sample(client: Client, name: str, args: argparse.Namespace) -> float:
    """Delete the api Service and time its re-creation."""
    old_uid = client.get(Service, name, namespace=NAMESPACE).metadata.uid

    def recreated() -> bool:
        service = get_or_none(client, Service, name)
        return service is not None and service.metadata.uid != old_uid

    return time_restore(
        lambda: client.delete(Service, name, namespace=NAMESPACE),
        recreated,
        interval=args.interval,
        timeout=args.timeout,
    )


def scale_sample(client: Client, name: str, args: argparse.Namespace) -> float:
    """Change the worker Deployment's replicas and time until the rendered count is back."""
    rendered = client.get(Deployment, name, namespace=NAMESPACE).spec.replicas

    def scale() -> None:
        client.patch(
            Deployment,
            name,
            {"spec": {"replicas": rendered + 2}},
            namespace=NAMESPACE,
            patch_type=PatchType.MERGE,
            field_manager=DRIFT_FIELD_MANAGER,
        )

    def reverted() -> bool:
        return bool(client.get(Deployment, name, namespace=NAMESPACE).spec.replicas == rendered)

    return time_restore(scale, reverted, interval=args.interval, timeout=args.timeout)


def main() -> None:
    """Sample both kinds of drift and print the medians."""
    args = parse_args()
    stop_on_sigterm()
    cluster = Cluster()
    cluster.ensure_up()
    operator = OperatorProcess(
        source=args.operator_source,
        kubeconfig=cluster.kubeconfig,
        log_path=cluster.state_dir / "logs" / "bench-drift-operator.log",
    )
    client = Client(KubeConfig.from_file(cluster.kubeconfig))
    target = apiservice_names(1)[0]
    kinds: dict[str, Callable[[Client, str, argparse.Namespace], float]] = {
        "Service deleted": lambda c, n, a: delete_service_sample(c, f"{n}-api", a),
        "Deployment replicas changed": lambda c, n, a: scale_sample(c, f"{n}-worker", a),
    }
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    try:
        cluster.cleanup()
        operator.start()
        cluster.create_namespace(NAMESPACE)
        names = apiservice_names(args.apiservices)
        cluster.apply([example_apiservice(name) for name in names], NAMESPACE)
        for kind, sample in kinds.items():
            for index in range(args.samples):
                wait_until(
                    lambda: count_ready(cluster, NAMESPACE) == args.apiservices,
                    timeout=300,
                    interval=0.5,
                    description=f"{args.apiservices} Ready ApiServices",
                )
                operator.wait_idle(quiet=2, timeout=120)
                seconds = sample(client, target, args)
                log(f"{kind}, sample {index + 1}/{args.samples}: {seconds * 1000:.0f} ms")
                samples[kind].append(seconds * 1000)
    finally:
        operator.stop()
        client.close()
        cluster.cleanup()
        if cluster.started_here and not args.keep_cluster:
            cluster.down()

    rows = [
        [kind, len(values), median(values), min(values), max(values)]
        for kind, values in samples.items()
    ]
    print_table(
        f"Drift reaction: milliseconds until the operator restores the object "
        f"({args.apiservices} Ready ApiServices, GET every {args.interval}s)",
        ["drift", "samples", "median ms", "min ms", "max ms"],
        rows,
    )
    print(f"\n{machine_summary()}")
    print(f"Operator: {source_revision(args.operator_source)}")
    write_json(args.json, samples)


if __name__ == "__main__":
    main()
