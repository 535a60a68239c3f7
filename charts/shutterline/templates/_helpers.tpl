{{/* Names, labels and the pieces every pod shares. */}}

{{- define "shutterline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shutterline.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "shutterline.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "shutterline.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "shutterline.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "shutterline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "kafka") */}}
{{- define "shutterline.selector" -}}
app.kubernetes.io/name: {{ include "shutterline.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "shutterline.componentLabels" -}}
{{ include "shutterline.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* image: (dict "image" .Values.x.image "ctx" $) */}}
{{- define "shutterline.image" -}}
{{- printf "%s:%s" .image.repository (toString (default .ctx.Chart.AppVersion .image.tag)) -}}
{{- end -}}

{{/* The restricted Pod Security Standard, pod level: (dict "uid" 1000) */}}
{{- define "shutterline.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The restricted Pod Security Standard, container level. */}}
{{- define "shutterline.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "shutterline.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Kafka names. */}}
{{- define "shutterline.kafka.name" -}}
{{- printf "%s-kafka" (include "shutterline.fullname" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "shutterline.kafka.headless" -}}
{{- printf "%s-headless" (include "shutterline.kafka.name" .) -}}
{{- end -}}

{{- define "shutterline.kafka.clusterIdSecret" -}}
{{- printf "%s-cluster-id" (include "shutterline.kafka.name" .) -}}
{{- end -}}

{{/* <headless>.<namespace>.svc.<domain> */}}
{{- define "shutterline.kafka.domain" -}}
{{- printf "%s.%s.svc.%s" (include "shutterline.kafka.headless" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/* What clients dial: the in-cluster brokers, or the existing Kafka. */}}
{{- define "shutterline.kafka.bootstrap" -}}
{{- if .Values.kafka.enabled -}}
{{- printf "%s:%d" (include "shutterline.kafka.domain" .) (int .Values.kafka.ports.client) -}}
{{- else -}}
{{- required "kafka.external.bootstrapServers is required when kafka.enabled is false" .Values.kafka.external.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{/* The static controller quorum: 0@<sts>-0.<domain>:9093,1@... */}}
{{- define "shutterline.kafka.voters" -}}
{{- $name := include "shutterline.kafka.name" . -}}
{{- $domain := include "shutterline.kafka.domain" . -}}
{{- $voters := list -}}
{{- range $i := until (int .Values.kafka.replicas) -}}
{{- $voters = append $voters (printf "%d@%s-%d.%s:%d" $i $name $i $domain (int $.Values.kafka.ports.controller)) -}}
{{- end -}}
{{- join "," $voters -}}
{{- end -}}

{{/* Replication of internal topics: 3, or fewer on a smaller cluster. */}}
{{- define "shutterline.kafka.internalRF" -}}
{{- min 3 (int .Values.kafka.replicas) -}}
{{- end -}}

{{- define "shutterline.registry.url" -}}
{{- if .Values.schemaRegistry.enabled -}}
{{- printf "http://%s-registry.%s.svc.%s:%d/apis/ccompat/v7" (include "shutterline.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.schemaRegistry.port) -}}
{{- else -}}
{{- .Values.schemaRegistry.url -}}
{{- end -}}
{{- end -}}

{{- define "shutterline.otlp.endpoint" -}}
{{- if .Values.telemetry.collector.enabled -}}
{{- printf "http://%s-collector.%s.svc.%s:4318" (include "shutterline.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- else -}}
{{- .Values.telemetry.otlpEndpoint -}}
{{- end -}}
{{- end -}}
