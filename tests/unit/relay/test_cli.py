"""The relay's configuration from the pod's environment."""

from __future__ import annotations

import json

import pytest

from shutterline import exceptions
from shutterline.cli import relay as relay_cli
from shutterline.pipeline import settings as settings_mod


def test_the_pods_detector_comes_from_the_visit_spec_and_completion_index():
    env = {
        "SHUTTERLINE_VISIT_SPEC": json.dumps({"visitId": 100007, "detectors": [1, 2]}),
        "SHUTTERLINE_DETECTORS": "28,35",
        "JOB_COMPLETION_INDEX": "1",
    }
    assert relay_cli.expected_detector(env) == {(100007, 35)}
    assert relay_cli.expected_detector({}) is None
    with pytest.raises(exceptions.PermanentError, match="JOB_COMPLETION_INDEX"):
        relay_cli.expected_detector({**env, "JOB_COMPLETION_INDEX": "5"})


def test_relay_settings_from_the_environment():
    env = {
        "SHUTTERLINE_REPO": "s3://b/repo",
        "SHUTTERLINE_APDB": "postgresql://h/apdb",
        "SHUTTERLINE_KAFKA_BOOTSTRAP": "kafka:9092",
        "SHUTTERLINE_RELAY_GIVE_UP_S": "45",
        "SHUTTERLINE_RELAY_METRICS_PORT": "9464",
    }
    settings = settings_mod.Settings.from_env(env)
    assert settings.kafka_bootstrap == "kafka:9092" and settings.relay_give_up_s == 45.0
    assert settings.relay_metrics_port == 9464 and settings.alert_topic == "alerts"
    with pytest.raises(exceptions.PermanentError, match="SHUTTERLINE_RELAY_METRICS_PORT"):
        settings_mod.Settings.from_env({**env, "SHUTTERLINE_RELAY_METRICS_PORT": "x"})
