"""One frozen settings object, read once at start-up and passed down.

The embedded run builds it from its command line; a worker pod builds it from the
environment the operator sets (`Settings.from_env`). The variable names below are the
contract between the operator's Job builder and every container of the worker pod
(docs/architecture.md, "The worker pod"); change one only together with the builder.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from shutterline import exceptions

__all__ = ["ENV", "Settings"]

#: Settings field -> environment variable the operator sets on worker containers.
ENV: dict[str, str] = {
    "repo": "SHUTTERLINE_REPO",
    "apdb": "SHUTTERLINE_APDB",
    "spool": "SHUTTERLINE_SPOOL",
    "workdir": "SHUTTERLINE_WORKDIR",
    "direct": "SHUTTERLINE_DIRECT",
    "export": "SHUTTERLINE_EXPORT",
    "padding_arcsec": "SHUTTERLINE_PADDING_ARCSEC",
    "otlp_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "spans_path": "SHUTTERLINE_SPANS_PATH",
    "raw_wait_s": "SHUTTERLINE_RAW_WAIT_S",
    "kafka_bootstrap": "SHUTTERLINE_KAFKA_BOOTSTRAP",
    "alert_topic": "SHUTTERLINE_ALERT_TOPIC",
    "metrics_topic": "SHUTTERLINE_METRICS_TOPIC",
    "schema_registry_url": "SHUTTERLINE_SCHEMA_REGISTRY_URL",
    "relay_give_up_s": "SHUTTERLINE_RELAY_GIVE_UP_S",
    "telemetry_hz": "SHUTTERLINE_TELEMETRY_HZ",
    "relay_metrics_port": "SHUTTERLINE_RELAY_METRICS_PORT",
    "otlp_metrics_endpoint": "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "pod_name": "POD_NAME",
    "native_sidecar": "SHUTTERLINE_NATIVE_SIDECAR",
    "relay_full_check": "SHUTTERLINE_RELAY_FULL_CHECK",
    "dia_min_classifier": "SHUTTERLINE_DIA_MIN_CLASSIFIER",
    "dia_min_classifier_bright": "SHUTTERLINE_DIA_MIN_CLASSIFIER_BRIGHT",
}

_TRUE = ("1", "true", "yes")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a detector run needs to know about its surroundings.

    Attributes
    ----------
    repo
        Central repository URI (a directory or ``s3://bucket/path``).
    apdb
        Alert production database: a SQLite path or a PostgreSQL URL.
    spool
        The alert relay's spool directory.
    workdir
        Scratch space: local repositories of pre-cached detectors live below it.
    direct
        Read the central repository directly (development mode) instead of pre-caching.
    export
        Dataset types of internal products to export to the central repository.
    padding_arcsec
        Template and reference-catalog margin around a detector footprint.
    otlp_endpoint, spans_path
        Where spans go: an OTLP/HTTP receiver and/or a JSON-lines file.
    raw_wait_s
        How long a pre-staged detector waits for its raw to land before failing.
    kafka_bootstrap
        Kafka bootstrap servers; ``None`` keeps alerts in the spool (files only).
    alert_topic, metrics_topic
        Topics of the alert stream and of the broadcast QA/performance records.
    schema_registry_url
        Confluent-compatible schema registry holding the alert schema at its id.
    relay_give_up_s
        How long the relay keeps trying an unreachable broker before it exits (code 69).
    telemetry_hz
        Sampling rate of the telemetry sidecar.
    relay_metrics_port
        Port of the relay's Prometheus ``/metrics``; ``None`` serves none.
    otlp_metrics_endpoint
        Full URL (``.../v1/metrics``) of an OTLP/HTTP metrics receiver; without one the
        telemetry sidecar's samples go only on the pod span (a trace store such as Jaeger
        takes no metrics, so ``OTEL_EXPORTER_OTLP_ENDPOINT`` is not used for them).
    pod_name
        The worker pod's name (downward API); spans of a pod's containers parent on its pod
        span (`shutterline.telemetry.tracing.pod_context`). None in the embedded run.
    native_sidecar
        Run as a Kubernetes native sidecar: when its work is done the process stays up until
        SIGTERM, because the kubelet restarts an exited sidecar for as long as the pod lives.
    relay_full_check
        The relay decodes every packet's Avro body, also those whose writer's checksum
        vouches for their bytes (`shutterline.relay.framing`).
    dia_min_classifier, dia_min_classifier_bright
        The DIA selection's bars on the reliability classifier's score, below and from
        ``|snr|`` 30 (`shutterline.differencing.dia.accept`): a site's own trade between
        completeness and false rate. The defaults are `dia`'s, chosen on the fitting nights.
    """

    repo: str
    apdb: str
    spool: Path
    workdir: Path
    direct: bool = False
    export: tuple[str, ...] = ()
    padding_arcsec: float = 30.0
    otlp_endpoint: str | None = None
    spans_path: Path | None = None
    raw_wait_s: float = 600.0
    kafka_bootstrap: str | None = None
    alert_topic: str = "alerts"
    metrics_topic: str = "shutterline-metrics"
    schema_registry_url: str | None = None
    relay_give_up_s: float = 300.0
    telemetry_hz: float = 4.0
    relay_metrics_port: int | None = None
    otlp_metrics_endpoint: str | None = None
    pod_name: str | None = None
    native_sidecar: bool = False
    relay_full_check: bool = False
    # The same values as differencing.dia.MIN_CLASSIFIER(_BRIGHT), which say how they were
    # chosen (settings imports no stage; a unit test keeps the two equal).
    dia_min_classifier: float = 0.1
    dia_min_classifier_bright: float = 0.05

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings of a worker pod, from the variables the operator sets (see `ENV`).

        Raises `shutterline.exceptions.PermanentError` naming a missing or unusable variable.
        """
        env = os.environ if env is None else env
        missing = [ENV[k] for k in ("repo", "apdb") if not env.get(ENV[k])]
        if missing:
            raise exceptions.PermanentError(f"missing environment variables: {', '.join(missing)}")
        # Where the pod mounts its one ephemeral volume (docs/architecture.md).
        values: dict[str, object] = {
            "spool": Path("/scratch/spool"),
            "workdir": Path("/scratch/work"),
        }
        for field in dataclasses.fields(cls):
            text = env.get(ENV[field.name], "")
            if text == "":
                continue
            values[field.name] = _parse(field.name, text)
        return cls(**values)  # type: ignore[arg-type]


def _parse(name: str, text: str) -> object:
    """One environment value as the type of field ``name``; say which variable is wrong."""
    try:
        if name in ("spool", "workdir", "spans_path"):
            return Path(text)
        if name in ("direct", "native_sidecar", "relay_full_check"):
            return text.lower() in _TRUE
        if name == "export":
            return tuple(x for x in text.split(",") if x)
        if name in (
            "padding_arcsec",
            "raw_wait_s",
            "relay_give_up_s",
            "telemetry_hz",
            "dia_min_classifier",
            "dia_min_classifier_bright",
        ):
            return float(text)
        if name == "relay_metrics_port":
            return int(text)
    except ValueError as exc:
        raise exceptions.PermanentError(f"{ENV[name]}={text!r}: {exc}") from None
    return text
