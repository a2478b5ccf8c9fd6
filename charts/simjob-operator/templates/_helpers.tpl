{{/*
Names and labels shared by every template of the simjob-operator chart.
*/}}

{{- define "simjob-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/* release-chart, or the release name alone when it already contains the chart name. */}}
{{- define "simjob-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Cluster-scoped objects carry the release namespace too: two releases of the
same name in different namespaces must not share a ClusterRole. */}}
{{- define "simjob-operator.clusterName" -}}
{{- printf "%s-%s" (include "simjob-operator.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "simjob-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "simjob-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "simjob-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "simjob-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "simjob-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "simjob-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "simjob-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The operator's command line after the `simjob-operator` entry point. */}}
{{- define "simjob-operator.args" -}}
- --standalone
{{- if .Values.watchNamespaces }}
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
- --liveness=http://0.0.0.0:{{ .Values.health.port }}/healthz
- --log-format={{ .Values.logFormat }}
{{- if eq .Values.logLevel "debug" }}
- --debug
{{- else if eq .Values.logLevel "verbose" }}
- --verbose
{{- else if eq .Values.logLevel "warning" }}
- --quiet
{{- end }}
{{- end }}

{{/* The metrics port, refused when it is the health port (both are served in the pod). */}}
{{- define "simjob-operator.metricsPort" -}}
{{- if eq (int .Values.metrics.port) (int .Values.health.port) }}
{{- fail "metrics.port must differ from health.port" }}
{{- end }}
{{- .Values.metrics.port }}
{{- end }}
