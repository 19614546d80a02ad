"""The result notification: default content, Slack format, loopback delivery, refusal of public hosts."""

from __future__ import annotations

from typing import Any

import pytest

from common.config import NotifySettings
from common.errors import ConfigError
from site_node.inference.notify import notification, post_notification

FACTS = {
    "accession": "ACC123",
    "model": "seg3d",
    "status": "stored",
    "lesions": 2,
    "volumes_ml": [1.5, 0.2],
    "latency_s": 12.3,
    "patient_id": "MRN-0042",
    "patient_name": "Doe^Jane",
}


def test_default_content_identifies_only_the_accession(webhook: Any) -> None:
    settings = NotifySettings(url=webhook.url)
    assert post_notification(FACTS, settings) is True
    assert webhook.received == [
        {"accession": "ACC123", "model": "seg3d", "status": "stored", "lesions": 2, "latency_s": 12.3}
    ]


def test_slack_payload_and_chosen_fields() -> None:
    settings = NotifySettings(url="http://127.0.0.1:9/x", format="slack", fields=["accession", "volumes_ml"])
    assert notification(FACTS, settings) == {
        "text": "AI result stored in PACS - accession: ACC123; volumes_ml: [1.5, 0.2]"
    }


def test_no_url_sends_nothing_and_bad_settings_are_refused() -> None:
    assert post_notification(FACTS, NotifySettings()) is False
    with pytest.raises(ValueError, match="unknown notification field"):
        NotifySettings(fields=["social_security_number"])
    with pytest.raises(ConfigError, match="private or loopback"):
        post_notification(FACTS, NotifySettings(url="http://8.8.8.8/hook"))
