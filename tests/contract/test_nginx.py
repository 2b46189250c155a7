"""The rendered nginx.conf of the edge proxy, run by a real nginx in front of a stub api.

The stub echoes the path and headers that it received, so each test checks the request as the
api would receive it. Clients connect from 127.0.0.1, inside the metrics allow list, or from
127.0.0.2, outside it, because Linux routes all of 127.0.0.0/8 to the loopback interface.
"""

from __future__ import annotations

import copy
import http.client
import ipaddress
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apiservice_operator.model import ApiServiceSpec
from apiservice_operator.render import child_names, render_nginx_conf
from tests.contract.programs import NginxRunner
from tests.contract.servers import LOCALHOST
from tests.contract.stack import Example, example_params, render_stack
from tests.contract.upstream import UpstreamStub

EDGE_EXAMPLES = example_params(lambda spec: spec.ingress.edge.enabled)
INSIDE_CLIENT = LOCALHOST
OUTSIDE_CLIENT = "127.0.0.2"
REQUEST_TIMEOUT = 5.0
# nginx's $request_id: 16 random bytes in hex.
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class EdgeResponse:
    """A response of the edge proxy, with lowercase header names."""

    status: int
    headers: dict[str, str]
    body: bytes

    def received(self) -> dict[str, Any]:
        """Return the request as the stub api received it, from the echoed JSON body."""
        assert self.status == 200, f"expected 200 from the api, got {self.status}: {self.body!r}"
        echoed: dict[str, Any] = json.loads(self.body)
        return echoed


@dataclass(frozen=True)
class Edge:
    """A running edge proxy rendered from one example."""

    example: Example
    spec: ApiServiceSpec
    port: int

    def get(
        self,
        path: str,
        *,
        client: str = INSIDE_CLIENT,
        headers: Mapping[str, str] | None = None,
    ) -> EdgeResponse:
        """Send GET `path` from the loopback address `client` and read the whole response."""
        connection = http.client.HTTPConnection(
            LOCALHOST, self.port, timeout=REQUEST_TIMEOUT, source_address=(client, 0)
        )
        try:
            connection.request("GET", path, headers=dict(headers or {}))
            response = connection.getresponse()
            return EdgeResponse(
                status=response.status,
                headers={name.lower(): value for name, value in response.getheaders()},
                body=response.read(),
            )
        finally:
            connection.close()


def spec_with_loopback_allow_list(example: Example) -> ApiServiceSpec:
    """Return the example's spec with a metrics allow list that has 127.0.0.1 but not 127.0.0.2.

    The tests need one loopback client inside the allow list and one outside it, and keep the
    example's other entries so that nginx still parses them.
    """
    data = copy.deepcopy(example.spec_data)
    allow_list = example.spec().ingress.edge.metrics_allow_list
    networks = [ipaddress.ip_network(entry, strict=False) for entry in allow_list]
    edge = data.setdefault("ingress", {}).setdefault("edge", {})
    if any(ipaddress.ip_address(OUTSIDE_CLIENT) in network for network in networks):
        # A list with 127.0.0.2 leaves no loopback client outside it, so it is replaced.
        edge["metricsAllowList"] = [f"{INSIDE_CLIENT}/32"]
    elif not any(ipaddress.ip_address(INSIDE_CLIENT) in network for network in networks):
        # A list of cluster networks only, as in the full example, has no loopback client
        # inside it, so 127.0.0.1 is added.
        edge["metricsAllowList"] = [*allow_list, f"{INSIDE_CLIENT}/32"]
    return ApiServiceSpec.model_validate(data)


@pytest.fixture(scope="module", params=EDGE_EXAMPLES)
def edge(
    request: pytest.FixtureRequest, nginx: NginxRunner, upstream: UpstreamStub
) -> Iterator[Edge]:
    """Yield nginx running the example's rendered nginx.conf, forwarding to the stub api."""
    example: Example = request.param
    spec = spec_with_loopback_allow_list(example)

    def render(temp_dir: Path, listen: str) -> str:
        return render_nginx_conf(
            example.owner(),
            spec,
            api_upstream=upstream.address,
            listen=listen,
            temp_dir=str(temp_dir),
        )

    running = nginx.start(render)
    try:
        yield Edge(example=example, spec=spec, port=running.port)
    finally:
        running.server.stop()


def unique_query() -> str:
    """Return a query string that marks one request, to find it among the upstream's."""
    return f"probe={uuid.uuid4().hex}"


def reached_upstream(upstream: UpstreamStub, query: str) -> list[str]:
    """Return the paths of the upstream's requests that carry `query`."""
    return [received.path for received in upstream.received() if query in received.path]


@pytest.mark.parametrize("example", EDGE_EXAMPLES)
def test_rendered_config_passes_nginx_test(example: Example, nginx: NginxRunner) -> None:
    # The example's own allow list, not the loopback one, so that every entry is checked.
    def render(temp_dir: Path, listen: str) -> str:
        return render_nginx_conf(
            example.owner(),
            example.spec(),
            api_upstream=f"{LOCALHOST}:8000",
            listen=listen,
            temp_dir=str(temp_dir),
        )

    exit_code, output = nginx.check_config(render)

    assert exit_code == 0, output
    assert "syntax is ok" in output
    assert "test is successful" in output
    assert "[warn]" not in output, output


@pytest.mark.parametrize(
    ("path", "upstream_path"),
    [
        ("/api/orders?x=1", "/orders?x=1"),
        ("/api/", "/"),
        ("/api/v1/orders/42/items", "/v1/orders/42/items"),
    ],
)
def test_api_prefix_is_stripped(edge: Edge, path: str, upstream_path: str) -> None:
    assert edge.get(path).received()["path"] == upstream_path


def test_health_reaches_health_path(edge: Edge) -> None:
    assert edge.get("/health").received()["path"] == edge.spec.api.health_path


def test_metrics_reach_metrics_path(edge: Edge) -> None:
    metrics_path = edge.spec.api.metrics_path

    direct = edge.get(metrics_path)
    prefixed = edge.get(f"/api{metrics_path}")

    assert direct.received()["path"] == metrics_path
    assert prefixed.received()["path"] == metrics_path


@pytest.mark.parametrize("path", ["/", "/anything", "/anything/deeper?q=1&r=2"])
def test_other_paths_pass_unchanged(edge: Edge, path: str) -> None:
    assert edge.get(path).received()["path"] == path


def test_request_id_reaches_api_and_client(edge: Edge) -> None:
    first = edge.get("/anything")
    second = edge.get("/anything")

    first_id = first.received()["headers"].get("x-request-id")
    second_id = second.received()["headers"].get("x-request-id")
    assert first_id is not None, "the api received no X-Request-ID"
    assert REQUEST_ID.match(first_id), first_id
    assert first.headers.get("x-request-id") == first_id
    assert second.headers.get("x-request-id") == second_id
    assert second_id != first_id


def test_client_address_reaches_api(edge: Edge) -> None:
    headers = edge.get("/anything", client=OUTSIDE_CLIENT).received()["headers"]

    assert headers.get("x-real-ip") == OUTSIDE_CLIENT
    assert headers.get("x-forwarded-for") == OUTSIDE_CLIENT


def test_forwarded_for_is_appended(edge: Edge) -> None:
    # The address of an earlier proxy, as the ingress controller sends it. Only the header
    # carries it: no connection goes there.
    earlier = "198.51.100.7"

    response = edge.get("/anything", client=OUTSIDE_CLIENT, headers={"X-Forwarded-For": earlier})

    forwarded_for = response.received()["headers"].get("x-forwarded-for")
    assert forwarded_for == f"{earlier}, {OUTSIDE_CLIENT}"


@pytest.mark.parametrize(("sent", "expected"), [(None, "http"), ("https", "https")])
def test_forwarded_proto_reaches_api(edge: Edge, sent: str | None, expected: str) -> None:
    headers = {"X-Forwarded-Proto": sent} if sent is not None else {}

    received = edge.get("/anything", headers=headers).received()

    assert received["headers"].get("x-forwarded-proto") == expected


def test_metrics_allowed_inside_allow_list(edge: Edge) -> None:
    response = edge.get(edge.spec.api.metrics_path, client=INSIDE_CLIENT)

    assert response.status == 200


@pytest.mark.parametrize("variant", ["exact", "trailing-slash", "subpath", "api-prefix"])
def test_metrics_rejected_outside_allow_list(
    edge: Edge, upstream: UpstreamStub, variant: str
) -> None:
    metrics_path = edge.spec.api.metrics_path
    path = {
        "exact": metrics_path,
        "trailing-slash": f"{metrics_path}/",
        "subpath": f"{metrics_path}/extra",
        "api-prefix": f"/api{metrics_path}",
    }[variant]
    query = unique_query()

    response = edge.get(f"{path}?{query}", client=OUTSIDE_CLIENT)

    assert response.status == 403, response.body
    assert reached_upstream(upstream, query) == []


def test_metrics_rejected_through_proxy(edge: Edge, upstream: UpstreamStub) -> None:
    # A request with X-Forwarded-For came through another proxy, so its client address is that
    # proxy's, and nginx rejects it even from inside the allow list.
    query = unique_query()

    response = edge.get(
        f"{edge.spec.api.metrics_path}?{query}",
        client=INSIDE_CLIENT,
        headers={"X-Forwarded-For": OUTSIDE_CLIENT},
    )

    assert response.status == 403, response.body
    assert reached_upstream(upstream, query) == []


def test_probe_path_answered_by_nginx(edge: Edge, upstream: UpstreamStub) -> None:
    container = render_stack(edge.example).container(child_names(edge.example.name).edge)
    readiness_path = container["readinessProbe"]["httpGet"]["path"]
    liveness_path = container["livenessProbe"]["httpGet"]["path"]
    query = unique_query()

    readiness = edge.get(f"{readiness_path}?{query}")
    liveness = edge.get(f"{liveness_path}?{query}")

    assert readiness.status == 200
    assert liveness.status == 200
    assert reached_upstream(upstream, query) == [], "the probe must not depend on the api"
