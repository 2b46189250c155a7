"""Drift detection without reads: is everything we apply already present on the live object?

The API server adds defaults and status to what we apply, so a live object equals our desired
object only on the fields we set. A child whose live copy contains every desired field with the
same value needs no write; anything else (an edit by hand, a deletion, a new spec) does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
