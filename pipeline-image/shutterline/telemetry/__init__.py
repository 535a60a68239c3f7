"""Broadcast data: OpenTelemetry tracing set-up, stage spans and QA/performance quantities.

Stages never talk to an exporter: they open spans through `stages.StageRecorder` and add a
quantity with one line, ``recorder.emit("dia_sources", n)``. Where the spans go (OTLP to a
collector in a pod, a JSON-lines file in the embedded run) is configuration, set once at
start-up by `tracing.configure`.

The telemetry sidecar (`sidecar`, ``shutterline telemetry``) watches the pipeline from
outside: `locate` finds its process, `proc` samples it from ``/proc``, `podspan` names and
identifies the pod span, `metrics` exports the samples, `summary` leaves them for the relay.
Nothing here imports the pipeline's stages, the Butler or Kubernetes.
"""
