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

{{- define "shutterline.operator.name" -}}
{{- printf "%s-operator" (include "shutterline.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The operator's rules, read from the copy of operator/rbac/rbac.yaml (files/rbac.yaml). */}}
{{- define "shutterline.operator.rules" -}}
{{- range $doc := splitList "\n---" (.Files.Get "files/rbac.yaml") }}
{{- $obj := fromYaml $doc }}
{{- if eq (get $obj "kind") "ClusterRole" }}
{{- toYaml $obj.rules }}
{{- end }}
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

{{/* NetworkPolicy pieces. */}}
{{- define "shutterline.np.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .Values.networkPolicies.dns.namespace }}
      podSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicies.dns.podLabels | nindent 10 }}
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end }}
{{- define "shutterline.np.cidrs" -}}
{{- if .cidrs -}}
- to:
    {{- range .cidrs }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    {{- range .ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- else -}}
- ports:
    {{- range .ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end }}
{{- end }}

{{/* A small Deployment + Service of one component:
(dict "ctx" $ "component" "registry" "values" .Values.schemaRegistry "uid" 1001 "ports" (list (dict "name" "http" "port" 8080)) "env" (list ...) "args" (list ...)) */}}
{{- define "shutterline.simpleDeployment" -}}
{{- $ctx := .ctx }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "shutterline.fullname" $ctx }}-{{ .component }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "shutterline.componentLabels" (dict "ctx" $ctx "component" .component) | nindent 4 }}
spec:
  replicas: 1
  selector:
    matchLabels:
      {{- include "shutterline.selector" (dict "ctx" $ctx "component" .component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "shutterline.componentLabels" (dict "ctx" $ctx "component" .component) | nindent 8 }}
    spec:
      {{- with $ctx.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      securityContext:
        {{- include "shutterline.podSecurityContext" (dict "uid" .uid) | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "shutterline.image" (dict "image" .values.image "ctx" $ctx) }}
          imagePullPolicy: {{ .values.image.pullPolicy }}
          {{- with .args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .env }}
          env:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            {{- range .ports }}
            - name: {{ .name }}
              containerPort: {{ .port }}
            {{- end }}
          readinessProbe:
            tcpSocket: {port: {{ (first .ports).name }}}
            periodSeconds: 10
          livenessProbe:
            tcpSocket: {port: {{ (first .ports).name }}}
            periodSeconds: 20
            failureThreshold: 6
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          securityContext:
            {{- include "shutterline.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
            {{- with .mounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: {}
        {{- with .volumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "shutterline.fullname" $ctx }}-{{ .component }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "shutterline.componentLabels" (dict "ctx" $ctx "component" .component) | nindent 4 }}
spec:
  selector:
    {{- include "shutterline.selector" (dict "ctx" $ctx "component" .component) | nindent 4 }}
  ports:
    {{- range .ports }}
    - name: {{ .name }}
      port: {{ .port }}
      targetPort: {{ .name }}
    {{- end }}
{{- end -}}

{{/* A one-replica StatefulSet with a data volume, and its Service (dev services). */}}
{{- define "shutterline.devStatefulSet" -}}
{{- $ctx := .ctx }}
{{- $name := printf "%s-%s" (include "shutterline.fullname" $ctx) .component }}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ $name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "shutterline.componentLabels" (dict "ctx" $ctx "component" .component) | nindent 4 }}
spec:
  replicas: 1
  serviceName: {{ $name }}
  selector:
    matchLabels:
      {{- include "shutterline.selector" (dict "ctx" $ctx "component" .component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "shutterline.componentLabels" (dict "ctx" $ctx "component" .component) | nindent 8 }}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      securityContext:
        {{- include "shutterline.podSecurityContext" (dict "uid" .uid) | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "shutterline.image" (dict "image" .values.image "ctx" $ctx) }}
          imagePullPolicy: {{ .values.image.pullPolicy }}
          {{- with .args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          env:
            {{- toYaml .env | nindent 12 }}
          ports:
            - name: main
              containerPort: {{ .port }}
          readinessProbe:
            tcpSocket: {port: main}
            periodSeconds: 10
          resources:
            requests: {cpu: 100m, memory: 256Mi}
            limits: {memory: 1Gi}
          securityContext:
            {{- include "shutterline.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            - {name: data, mountPath: {{ .dataPath }}}
            - {name: tmp, mountPath: /tmp}
            {{- with .mounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: {}
        {{- with .volumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumeClaimTemplates:
    - metadata:
        name: data
      spec:
        accessModes: [ReadWriteOnce]
        {{- with .values.storage.storageClass }}
        storageClassName: {{ . }}
        {{- end }}
        resources:
          requests:
            storage: {{ .values.storage.size }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "shutterline.componentLabels" (dict "ctx" $ctx "component" .component) | nindent 4 }}
spec:
  selector:
    {{- include "shutterline.selector" (dict "ctx" $ctx "component" .component) | nindent 4 }}
  ports:
    - name: main
      port: {{ .port }}
      targetPort: main
{{- end -}}
