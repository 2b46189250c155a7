"""Drift detection without reads: is everything we apply already present on the live object?

The API server adds defaults and status to what we apply, so a live object equals our desired
object only on the fields we set. A child whose live copy contains every desired field with the
same value needs no write; anything else (an edit by hand, a deletion, a new spec) does.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

# Annotation on every child with the digest of what the operator last rendered for it.
RENDER_DIGEST_ANNOTATION = "apiservice.dev/render-digest"


def contains(live: Any, desired: Any) -> bool:
    """Tell whether `live` has every field of `desired` with an equal value.

    Mappings may carry extra keys on the live side, since the API server adds defaults.
    Lists must have the same length and match item by item, because the order of containers,
    ports and environment variables is part of what we apply.
    """
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(key in live and contains(live[key], value) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return False
        return all(contains(item, want) for item, want in zip(live, desired, strict=True))
    return bool(live == desired)


def with_render_digest(child: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of a rendered child annotated with the SHA-256 of the rendered content.

    `contains` checks only the fields that the render sets, so a field that the render stops
    setting, such as the ownerReference of a volume whose retentionPolicy became Retain, would
    stay on the live object. The digest changes whenever the render does, so such a child fails
    `contains` and is applied, and server-side apply removes the fields that the operator's
    field manager set before and no longer sets.
    """
    encoded = json.dumps(child, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(encoded.encode("utf-8")).hexdigest()
    stamped = copy.deepcopy(dict(child))
    metadata = stamped.setdefault("metadata", {})
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        RENDER_DIGEST_ANNOTATION: digest,
    }
    return stamped


def with_live_replicas(child: dict[str, Any], live: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a Deployment that renders no replica count with the live count, else `child`.

    The api Deployment has no replica count while a HorizontalPodAutoscaler owns it. Applying it
    without the field makes server-side apply drop the field that the operator set before, and
    the API server then defaults it to 1, below the autoscaler's minimum, until the autoscaler
    acts again. Applying the live count instead never changes the number of pods.
    """
    if child.get("kind") != "Deployment" or "replicas" in (child.get("spec") or {}):
        return child
    replicas = ((live or {}).get("spec") or {}).get("replicas")
    if replicas is None:
        return child
    with_count = copy.deepcopy(child)
    with_count["spec"]["replicas"] = replicas
    return with_count
