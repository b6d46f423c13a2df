"""Posting an alert to a webhook: the one way the platform tells a person that a run failed.

Why a plain JSON POST with the standard library: every chat and paging tool (and any in-house
gateway) accepts one, and the platform must not depend on a vendor's SDK to say "the daily
scoring failed". The URL comes from the deployment's environment (``FIN_ALERT_WEBHOOK_URL``); it
may carry a token, so it is never logged or put in metadata, only its host.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit


class AlertDeliveryError(RuntimeError):
    """The webhook did not accept the alert (unreachable, or a non-2xx answer)."""


def webhook_host(url: str) -> str:
    """``scheme://host[:port]`` of a webhook URL: what may be shown (never the path or token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


def post_alert(url: str, payload: Mapping[str, Any], *, timeout_s: float = 10.0) -> int:
    """POST ``payload`` as JSON to ``url``; the HTTP status, or :class:`AlertDeliveryError`."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise AlertDeliveryError(f"the webhook {webhook_host(url)} is not an http(s) URL")
    body = json.dumps(dict(payload), sort_keys=True, default=str).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raise AlertDeliveryError(
            f"the webhook {webhook_host(url)} answered HTTP {exc.code}"
        ) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise AlertDeliveryError(f"the webhook {webhook_host(url)} did not answer: {exc}") from exc
    if not 200 <= status < 300:
        raise AlertDeliveryError(f"the webhook {webhook_host(url)} answered HTTP {status}")
    return status
