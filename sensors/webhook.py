"""Alerts and the webhook that carries them: a Slack-compatible payload, sent or logged.

One :class:`Alert` is one message: what happened, to which asset, for which window, and a link
to the run in the Dagster UI. :class:`WebhookNotifier` posts it as a Slack incoming-webhook
payload (``text`` for clients that only read that, ``blocks`` for Slack) through the project's
retrying HTTP client, so a 5xx or a timeout is retried with back-off and a webhook that stays
down raises :class:`WebhookError` (the alert sensors then keep the alert for their next tick).
The webhook URL is a secret (Slack's carries its token): errors name it ``<webhook>``. Without a
webhook URL the alert is logged instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from resources.sources.http import HttpSource, SourceError

log = logging.getLogger(__name__)

EMOJI = {"ERROR": ":red_circle:", "WARN": ":large_yellow_circle:"}


class WebhookError(RuntimeError):
    """The webhook did not accept an alert after the client's retries."""


@dataclass(frozen=True)
class Alert:
    """One alert message."""

    kind: str  # "check", "freshness" or "run"
    title: str
    detail: str
    severity: str = "ERROR"
    asset: str | None = None
    window: str | None = None
    run_id: str | None = None
    run_url: str | None = None
    # Stable across re-deliveries of the same alert: a receiver can drop a duplicate by it.
    alert_id: str | None = None

    def text(self) -> str:
        """The one-line form: Slack's notification text, and the log line without a webhook."""
        parts = [f"[{self.severity}] {self.title}"]
        if self.window:
            parts.append(f"window {self.window}")
        parts.append(self.detail)
        if self.run_url:
            parts.append(self.run_url)
        return " | ".join(parts)


def slack_payload(alert: Alert) -> dict[str, Any]:
    """The Slack incoming-webhook body of ``alert`` (Mattermost and others read ``text``)."""
    fields = [
        f"*{name}:* {value}"
        for name, value in (
            ("Kind", alert.kind),
            ("Severity", alert.severity),
            ("Asset", alert.asset),
            ("Window", alert.window),
        )
        if value
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"{EMOJI.get(alert.severity, '')} *{alert.title}*\n{alert.detail}"},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "  ".join(fields)}]},
    ]
    if alert.run_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Open the run"}, "url": alert.run_url}
                ],
            }
        )
    if alert.alert_id:
        blocks[1]["elements"].append({"type": "plain_text", "text": f"alert id {alert.alert_id}"})
    return {"text": alert.text(), "blocks": blocks}


class WebhookNotifier:
    """Posts alerts to a Slack-compatible webhook, or logs them when there is none."""

    def __init__(
        self,
        url: str | None,
        *,
        timeout_s: float = 10.0,
        max_attempts: int = 3,
        backoff_base_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        logger: logging.Logger | None = None,
    ):
        self.url = url
        self.logger = logger or log
        self._http = (
            HttpSource(
                "alert_webhook",
                "",
                timeout_s=timeout_s,
                max_attempts=max_attempts,
                backoff_base_s=backoff_base_s,
                backoff_max_s=4.0,
                transport=transport,
            )
            if url
            else None
        )

    def send(self, alert: Alert) -> None:
        """Deliver ``alert``; raises :class:`WebhookError` if the webhook fails after its retries."""
        if self._http is None or not self.url:
            self.logger.warning("ALERT (no CRYPTO_ALERT_WEBHOOK_URL set): %s", alert.text())
            return
        try:
            self._http.request("POST", self.url, json=slack_payload(alert))
        except SourceError as exc:
            raise WebhookError(str(exc).replace(self.url, "<webhook>")) from None

    def close(self) -> None:
        """Close the HTTP connection pool."""
        if self._http is not None:
            self._http.close()
