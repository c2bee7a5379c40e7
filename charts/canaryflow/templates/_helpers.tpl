{{/* The chart's name, overridable. */}}
{{- define "canaryflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of the chart's own objects (not the WorkflowTemplates: their names are an API). */}}
{{- define "canaryflow.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "canaryflow.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "canaryflow.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* app.kubernetes.io labels, on every object. */}}
{{- define "canaryflow.labels" -}}
app.kubernetes.io/name: {{ include "canaryflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: canaryflow
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The task runtime image; the tag defaults to the chart's appVersion. */}}
{{- define "canaryflow.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The service account the release workflow's pods run as. */}}
{{- define "canaryflow.serviceAccountName" -}}
{{- default "canaryflow-release" .Values.serviceAccount.name }}
{{- end }}

{{/* The namespaces whose services are released (the Role lives in each). */}}
{{- define "canaryflow.releaseNamespaces" -}}
{{- $namespaces := .Values.release.namespaces | default (list .Release.Namespace) }}
{{- toJson $namespaces }}
{{- end }}

{{/* The default plan, as YAML text ("" when the values give none). */}}
{{- define "canaryflow.planInline" -}}
{{- with .Values.plan.inline }}{{- if kindIs "string" . }}{{ . }}{{ else }}{{ toYaml . }}{{ end }}{{- end }}
{{- end }}

{{/* The webhook Secret's name; rendering stops with a readable error without it. */}}
{{- define "canaryflow.webhookSecret" -}}
{{- required "events.webhookSecret.name is required when events.enabled: create a Secret with the GitHub and GitLab webhook secrets and name it here" .Values.events.webhookSecret.name }}
{{- end }}

{{/* Where a Sensor trigger reads the service name: a payload key, or a data template. */}}
{{- define "canaryflow.sensorServiceSource" -}}
{{- if .serviceTemplate }}
dataTemplate: {{ .serviceTemplate | quote }}
{{- else }}
dataKey: {{ .service }}
{{- end }}
{{- end }}

{{/* Tekton: the release branches as a CEL list of string literals (quotes escaped). */}}
{{- define "canaryflow.celBranches" -}}
{{- $items := list }}
{{- range .Values.events.branches }}
{{- $items = append $items (printf "'refs/heads/%s'" (. | replace "\\" "\\\\" | replace "'" "\\'")) }}
{{- end }}
{{- printf "[%s]" (join ", " $items) }}
{{- end }}

{{/* Tekton: events.imageRegistry and a slash, as a CEL string literal. */}}
{{- define "canaryflow.celImageRegistry" -}}
{{- printf "'%s/'" (.Values.events.imageRegistry | trimSuffix "/" | replace "\\" "\\\\" | replace "'" "\\'") }}
{{- end }}

{{/* Tekton: the EventListener's service account. */}}
{{- define "canaryflow.triggersServiceAccount" -}}
{{- printf "%s-triggers" (include "canaryflow.fullname" .) }}
{{- end }}
