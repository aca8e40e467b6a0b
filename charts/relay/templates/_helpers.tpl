{{/*
Named templates of the relay chart. The ones meant for your own charts (README.md):
  relay.sidecar                        the relay container (a list item for spec.containers)
  relay.migrateInitContainer           the `relay migrate` init container (for spec.initContainers)
  relay.volumes                        the relay-config volume (for spec.volumes)
  relay.terminationGracePeriodSeconds  preStop + shutdown_timeout + margin, in seconds
  relay.configChecksum                 a pod annotation value that rolls the pods when relay.yaml changes
Each takes the relay chart's context: `.` here, `.Subcharts.relay` in a parent chart (Helm >= 3.7).
*/}}

{{- define "relay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "relay.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "relay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "relay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "relay.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "relay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "relay.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}

{{- define "relay.configMapName" -}}
{{- printf "%s-config" (include "relay.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* relay.yaml: .Values.relay.config plus the keys the chart owns (shutdown_timeout, ops.listen, inbox.listen). */}}
{{- define "relay.configYaml" -}}
{{- $cfg := deepCopy .Values.relay.config -}}
{{- if hasKey $cfg "shutdown_timeout" -}}
{{- fail "relay.config.shutdown_timeout: set relay.shutdownTimeoutSeconds instead (the pod's terminationGracePeriodSeconds is derived from it)" -}}
{{- end -}}
{{- $ops := deepCopy (default (dict) $cfg.ops) -}}
{{- if hasKey $ops "listen" -}}
{{- fail "relay.config.ops.listen: set relay.opsPort instead (the probes and the Service use it)" -}}
{{- end -}}
{{- $_ := set $ops "listen" (printf "0.0.0.0:%d" (int .Values.relay.opsPort)) -}}
{{- $_ = set $cfg "ops" $ops -}}
{{- if hasKey $cfg "inbox" -}}
{{- $inbox := deepCopy $cfg.inbox -}}
{{- if hasKey $inbox "listen" -}}
{{- fail "relay.config.inbox.listen: set relay.inboxPort instead (the container port and the inbox Service use it)" -}}
{{- end -}}
{{- $_ = set $inbox "listen" (printf "0.0.0.0:%d" (int .Values.relay.inboxPort)) -}}
{{- $_ = set $cfg "inbox" $inbox -}}
{{- end -}}
{{- $_ = set $cfg "shutdown_timeout" (printf "%ds" (int .Values.relay.shutdownTimeoutSeconds)) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{- define "relay.configChecksum" -}}
{{- include "relay.configYaml" . | sha256sum -}}
{{- end -}}

{{- define "relay.terminationGracePeriodSeconds" -}}
{{- add (int .Values.relay.preStopSleepSeconds) (int .Values.relay.shutdownTimeoutSeconds) (int .Values.relay.terminationGraceMarginSeconds) -}}
{{- end -}}

{{/* DATABASE_URL and the other secret variables, all through secretKeyRef; then relay.env. */}}
{{- define "relay.env" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.databaseUrl.secretName | default .Values.secrets.name | required "secrets.name (or secrets.databaseUrl.secretName) is required" }}
      key: {{ .Values.secrets.databaseUrl.key | required "secrets.databaseUrl.key is required" }}
{{- range .Values.secrets.env }}
- name: {{ .name | required "secrets.env[].name is required" }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName | default $.Values.secrets.name | required "secrets.env[].secretName or secrets.name is required" }}
      key: {{ .key | required "secrets.env[].key is required" }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}
{{- with .Values.relay.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "relay.volumeMounts" -}}
- name: relay-config
  mountPath: /etc/relay
  readOnly: true
{{- end -}}

{{- define "relay.volumes" -}}
- name: relay-config
  configMap:
    name: {{ include "relay.configMapName" . }}
    items:
      - key: relay.yaml
        path: relay.yaml
{{- end -}}

{{- define "relay.sidecar" -}}
- name: relay
  image: {{ include "relay.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["run", "--config", "/etc/relay/relay.yaml"]
  env:
    {{- include "relay.env" . | nindent 4 }}
  ports:
    - name: ops
      containerPort: {{ int .Values.relay.opsPort }}
      protocol: TCP
    {{- if hasKey .Values.relay.config "inbox" }}
    - name: inbox
      containerPort: {{ int .Values.relay.inboxPort }}
      protocol: TCP
    {{- end }}
  {{- if .Values.relay.livenessProbe.enabled }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: ops
    {{- toYaml (omit .Values.relay.livenessProbe "enabled") | nindent 4 }}
  {{- end }}
  {{- if .Values.relay.readinessProbe.enabled }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: ops
    {{- toYaml (omit .Values.relay.readinessProbe "enabled") | nindent 4 }}
  {{- end }}
  {{- if gt (int .Values.relay.preStopSleepSeconds) 0 }}
  lifecycle:
    preStop:
      exec:
        command: ["sleep", "{{ int .Values.relay.preStopSleepSeconds }}"]
  {{- end }}
  resources:
    {{- toYaml .Values.relay.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.relay.securityContext | nindent 4 }}
  volumeMounts:
    {{- include "relay.volumeMounts" . | nindent 4 }}
{{- end -}}

{{- define "relay.migrateInitContainer" -}}
- name: relay-migrate
  image: {{ include "relay.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["migrate", "--config", "/etc/relay/relay.yaml"]
  env:
    {{- include "relay.env" . | nindent 4 }}
  resources:
    {{- toYaml .Values.migrate.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.relay.securityContext | nindent 4 }}
  volumeMounts:
    {{- include "relay.volumeMounts" . | nindent 4 }}
{{- end -}}

{{- define "relay.podSelector" -}}
{{- if .Values.service.selector -}}
{{ toYaml .Values.service.selector }}
{{- else -}}
{{ include "relay.selectorLabels" . }}
{{- end -}}
{{- end -}}
