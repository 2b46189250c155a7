"""Command line entry point: `apiservice-operator` or `python -m apiservice_operator`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence

import kopf
import structlog
from prometheus_client import start_http_server

from apiservice_operator.observability.health import HEALTH, HealthServer
from apiservice_operator.observability.logging import configure_logging
from apiservice_operator.observability.metrics import REGISTRY

logger = structlog.get_logger(__name__)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; each option also reads an APISERVICE_OPERATOR_* variable."""
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="apiservice-operator",
        description="Run the ApiService operator against the cluster of the current kubeconfig "
        "(or the in-cluster service account).",
    )
    parser.add_argument(
        "--namespace",
        dest="namespaces",
        action="append",
        default=[n for n in env("APISERVICE_OPERATOR_NAMESPACES", "").split(",") if n],
        help="Watch only this namespace; repeat for several. Default: every namespace.",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default=env("APISERVICE_OPERATOR_LOG_FORMAT", "auto"),
        help="Log output: JSON lines, or console text; auto picks console on a terminal.",
    )
    parser.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default=env("APISERVICE_OPERATOR_LOG_LEVEL", "INFO").upper(),
        help="Lowest level of the records that are logged.",
    )
    parser.add_argument(
        "--bind-address",
        default=env("APISERVICE_OPERATOR_BIND_ADDRESS", "127.0.0.1"),
        help="Address of the metrics and health servers; 0.0.0.0 inside a pod.",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(env("APISERVICE_OPERATOR_METRICS_PORT", "8080")),
        help="TCP port of the Prometheus /metrics endpoint; 0 turns it off.",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=int(env("APISERVICE_OPERATOR_HEALTH_PORT", "8081")),
        help="TCP port of the /healthz liveness and /readyz readiness endpoints; 0 turns them off.",
    )
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=float(env("APISERVICE_OPERATOR_RESYNC_SECONDS", "600")),
        help="Seconds between passes of every ApiService that no event asked for; such a pass "
        "of an unchanged stack makes no API request.",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Configure logging, metrics and health probes, then run the Kopf operator until stopped."""
    args = parse_args(argv)
    json_output = args.log_format == "json" or (
        args.log_format == "auto" and not sys.stderr.isatty()
    )
    configure_logging(json_output=json_output, level=args.log_level)
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.bind_address, registry=REGISTRY)

    # Importing the handlers registers them with Kopf.
    from apiservice_operator.handlers import RUNTIME

    RUNTIME.resync_seconds = args.resync_seconds

    health_server = None
    if args.health_port:
        health_server = HealthServer(HEALTH, args.bind_address, args.health_port)
        health_server.start()
    try:
        # kopf.run() ends the same way: a cancelled operator is a stopped one.
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(run_operator(args.namespaces))
    except Exception:
        # Kopf re-raises the failure of one of its own tasks, such as discovery that found no
        # API server. Logging it here keeps the last line JSON and redacted.
        logger.exception("operator failed")
        return 1
    finally:
        if health_server is not None:
            health_server.stop()
    return 0


async def run_operator(namespaces: list[str]) -> None:
    """Run Kopf with the health monitor's heartbeat on the same event loop."""
    # The monitor reads the watch timeouts that the startup handler sets on these settings.
    settings = kopf.OperatorSettings()
    HEALTH.settings = settings
    heartbeat = asyncio.create_task(HEALTH.run_heartbeat(), name="health heartbeat")
    try:
        await kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=True,
            settings=settings,
            ready_flag=HEALTH.started,
        )
    finally:
        heartbeat.cancel()


if __name__ == "__main__":
    sys.exit(main())
