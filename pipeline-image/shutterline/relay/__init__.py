"""The alert relay: drains the alert spool to Kafka, then publishes the detector's record.

What belongs here: reading and checking spooled packets (``framing``, ``spoolfiles``), the
Kafka producer and its settings (``producer``), the relay loop with its bounded in-flight
window, back-off and give-up (``loop``), the pipeline's markers, the metrics topic and the
finish status (``markers``, ``finish``), Prometheus metrics (``metrics``), the schema
registry start-up check (``schemas``) and the embedded run's hook (``embedded``).

The relay never imports the stages, the Butler or the pipeline driver: its inputs are files
in the spool (docs/architecture.md, "The worker pod") and `pipeline.settings.Settings`.
"""

__all__: list[str] = []
