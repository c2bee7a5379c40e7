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

{{/*
A name that fits a limit, for names a controller or the API server holds to one (a label value or
a Service name: 63 characters): the name itself when it fits, else cut to max - 9 characters and
`-` and 8 hex digits of the sha256 of `key` (default: the whole name), so two long names that
share their first characters stay distinct. `hash` appends the digits even to a name that fits
(the Sensor does, for two repositories of one service id). Called with
(dict "name" NAME "max" N ["key" TEXT] ["hash" true]).
*/}}
{{- define "canaryflow.boundedName" -}}
{{- if or .hash (gt (len .name) (int .max)) }}
{{- printf "%s-%s" (.name | trunc (sub (int .max) 9 | int) | trimSuffix "-") (default .name .key | sha256sum | trunc 8) }}
{{- else }}
{{- .name }}
{{- end }}
{{- end }}

{{/*
The EventSource's name, `<fullname>-git` cut to 47 characters: Argo Events v1.9.11 names its
Service `<name>-eventsource-svc` (pkg/reconciler/eventsource/resource.go buildService), a
Service name is a DNS-1035 label (at most 63 characters), and labels the Deployment
`eventsource-name: <name>` (controller.go). The Sensors' dependencies and NOTES name it here.
*/}}
{{- define "canaryflow.eventSourceName" -}}
{{- include "canaryflow.boundedName" (dict "name" (printf "%s-git" (include "canaryflow.fullname" .)) "max" 47) }}
{{- end }}

{{/*
Prefix of the objects every install has one of (task library, accounts, Go cache claim):
fullnameOverride when set, else "canaryflow" (today's names, kept for the default install).
*/}}
{{- define "canaryflow.namePrefix" -}}
{{- default "canaryflow" .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/*
Name of one of the chart's engine objects (WorkflowTemplates, Tekton Tasks, Pipelines,
Triggers...) and of the references between them; call with (dict "root" $ "base" NAME).
`canaryflow-X` becomes `<namePrefix>-X` (canaryflow-tasks, canaryflow-<verb>, ...); any other
name (go-canary-release, feature-flag-rollout) is kept unless fullnameOverride is set, then
`<fullnameOverride>-<name>`. A name over 63 characters (it becomes the label value
workflows.argoproj.io/workflow-template, tekton.dev/task, tekton.dev/pipeline...) is cut with a
hash (canaryflow.boundedName). The default install keeps today's names; two installs in one
namespace: give each a fullnameOverride.
*/}}
{{- define "canaryflow.templateName" -}}
{{- $root := .root }}
{{- if hasPrefix "canaryflow-" .base }}
{{- include "canaryflow.boundedName" (dict "name" (printf "%s-%s" (include "canaryflow.namePrefix" $root) (trimPrefix "canaryflow-" .base)) "max" 63) }}
{{- else if $root.Values.fullnameOverride }}
{{- include "canaryflow.boundedName" (dict "name" (printf "%s-%s" (include "canaryflow.namePrefix" $root) .base) "max" 63) }}
{{- else }}
{{- .base }}
{{- end }}
{{- end }}

{{/* app.kubernetes.io labels and the values' commonLabels, on every object. */}}
{{- define "canaryflow.labels" -}}
app.kubernetes.io/name: {{ include "canaryflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: canaryflow
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The task runtime image: `<repository>@<digest>` when image.digest is set (the tag is then
ignored: a digest names one image, whatever a tag is moved to), else `<repository>:<tag>`, the
tag defaulting to the chart's appVersion.
*/}}
{{- define "canaryflow.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The service account the release workflow's pods run as. */}}
{{- define "canaryflow.serviceAccountName" -}}
{{- default (printf "%s-release" (include "canaryflow.namePrefix" .)) .Values.serviceAccount.name }}
{{- end }}

{{/*
Prefix of the per-namespace release service accounts: `<prefix>-<service namespace>`, the only
account a release of that namespace runs as (the WorkflowTemplate derives it from the
`namespace` parameter; no parameter chooses it). From the release's fullname, so two installs
never share one; serviceAccount.name replaces it.
*/}}
{{- define "canaryflow.releaseServiceAccountPrefix" -}}
{{- default (printf "%s-release" (include "canaryflow.fullname" .)) .Values.serviceAccount.name | trunc 190 | trimSuffix "-" }}
{{- end }}

{{/*
The registry the Roles are cut from: namespace -> [{service, route, deployment,
kubernetesService, router}] of events.services (empty when none are listed). Called without
failing on an empty events.services. `router` is the entry's router kind: release.routerKind
when set (it replaces every plan's), else the entry's `router`, else gateway-api (the plan's
default, canaryflow.plan.model.DEFAULT_ROUTER_KIND). Rendering stops when an entry's router
contradicts release.routerKind or is not among release.routers.
*/}}
{{- define "canaryflow.registry" -}}
{{- $root := . }}
{{- $registry := dict }}
{{- $override := .Values.release.routerKind }}
{{- range $repository, $given := .Values.events.services }}
{{- $given = $given | default dict }}
{{- $service := $given.service | default (base $repository | lower) }}
{{- $namespace := $given.namespace | default $root.Release.Namespace }}
{{- $router := $given.router | default "gateway-api" }}
{{- if $override }}
{{- if and $given.router (ne $given.router $override) }}
{{- fail (printf "events.services.%s.router is %s but release.routerKind %s replaces every plan's router: drop one of them" $repository $given.router $override) }}
{{- end }}
{{- $router = $override }}
{{- else if not (has $router $root.Values.release.routers) }}
{{- fail (printf "events.services.%s.router is %s%s, which is not among release.routers %s: add it there or name the service's router" $repository $router (ternary "" " (the default: a plan's default router)" (hasKey $given "router")) (toJson $root.Values.release.routers)) }}
{{- end }}
{{- $entries := get $registry $namespace | default list }}
{{- $registry = set $registry $namespace (append $entries (dict "service" $service "route" ($given.route | default $service) "deployment" ($given.deployment | default $service) "kubernetesService" ($given.kubernetesService | default $service) "router" $router)) }}
{{- end }}
{{- toJson $registry }}
{{- end }}

{{/*
What validate-plan holds a release's plan to (validate --registered-routers): each registered
service, "namespace/service", to the router kinds canaryflow.registry gives it (the Role of its
namespace grants those alone), as compact JSON; "" when no service is registered (no check).
*/}}
{{- define "canaryflow.registeredRouters" -}}
{{- $routers := dict }}
{{- range $namespace, $entries := include "canaryflow.registry" . | fromJson }}
{{- range $entries }}
{{- $key := printf "%s/%s" $namespace .service }}
{{- $_ := set $routers $key (append (get $routers $key | default list) .router | uniq) }}
{{- end }}
{{- end }}
{{- if $routers }}{{ toJson $routers }}{{ end }}
{{- end }}

{{/* The namespaces whose services are released (the Role lives in each): release.namespaces
and every namespace events.services names; with neither, the release namespace. */}}
{{- define "canaryflow.releaseNamespaces" -}}
{{- $namespaces := .Values.release.namespaces | default (list .Release.Namespace) }}
{{- if and .Values.events.enabled .Values.events.services (not .Values.release.namespaces) }}
{{- /* Services registered: their namespaces only (no Role in Argo's own namespace). */}}
{{- $namespaces = list }}
{{- end }}
{{- if .Values.events.enabled }}
{{- range include "canaryflow.services" . | fromJsonArray }}
{{- $namespaces = append $namespaces .namespace }}
{{- end }}
{{- end }}
{{- toJson ($namespaces | uniq) }}
{{- end }}

{{/* The default plan, as YAML text ("" when the values give none). */}}
{{- define "canaryflow.planInline" -}}
{{- with .Values.plan.inline }}{{- if kindIs "string" . }}{{ . }}{{ else }}{{ toYaml . }}{{ end }}{{- end }}
{{- end }}

{{/* The webhook Secret's name; rendering stops with a readable error without it. */}}
{{- define "canaryflow.webhookSecret" -}}
{{- required "events.webhookSecret.name is required when events.enabled: create a Secret with the GitHub and GitLab webhook secrets and name it here" .Values.events.webhookSecret.name }}
{{- end }}

{{/*
events.services with every default filled in, as a JSON list sorted by repository:
{repository, id, service, namespace, imageRepository, branches}. service defaults to the
repository's last path segment in lower case, namespace to the release namespace, imageRepository to
<release.imageRepository>/<service>, branches to events.branches.
*/}}
{{- define "canaryflow.services" -}}
{{- $root := . }}
{{- $services := list }}
{{- if not .Values.events.services }}
{{- fail "events.services is empty: list the repositories whose pushes start a release (events.services.<owner/name>: {}), or set events.enabled: false" }}
{{- end }}
{{- range $repository, $given := .Values.events.services }}
{{- $given = $given | default dict }}
{{- $service := $given.service | default (base $repository | lower) }}
{{- $id := regexReplaceAll "[^a-z0-9]+" (lower $repository) "-" | trunc 40 | trimAll "-" }}
{{- $services = append $services (dict
  "repository" $repository
  "id" $id
  "service" $service
  "namespace" ($given.namespace | default $root.Release.Namespace)
  "imageRepository" ($given.imageRepository | default (printf "%s/%s" (trimSuffix "/" $root.Values.release.imageRepository) $service))
  "branches" ($given.branches | default $root.Values.events.branches)) }}
{{- end }}
{{- toJson $services }}
{{- end }}

{{/* Tekton: text inside a CEL string literal (backslash and quote escaped). */}}
{{- define "canaryflow.celText" -}}
{{- . | replace "\\" "\\\\" | replace "'" "\\'" }}
{{- end }}

{{/* Tekton: a CEL string literal. */}}
{{- define "canaryflow.celString" -}}
{{- printf "'%s'" (include "canaryflow.celText" .) }}
{{- end }}

{{/* Tekton: the repositories of events.services as a CEL list. */}}
{{- define "canaryflow.celRepositories" -}}
{{- $items := list }}
{{- range include "canaryflow.services" . | fromJsonArray }}
{{- $items = append $items (include "canaryflow.celString" .repository) }}
{{- end }}
{{- printf "[%s]" (join ", " $items) }}
{{- end }}

{{/*
Tekton: a CEL map from each repository of events.services to one field of its entry in
canaryflow.services (the Sensor's defaults); for "branches", a list of refs/heads/<branch>.
Called with (dict "root" $ "field" NAME).
*/}}
{{- define "canaryflow.celServiceMap" -}}
{{- $field := .field }}
{{- $items := list }}
{{- range include "canaryflow.services" .root | fromJsonArray }}
{{- $value := "" }}
{{- if eq $field "branches" }}
{{- $refs := list }}
{{- range .branches }}
{{- $refs = append $refs (include "canaryflow.celString" (printf "refs/heads/%s" .)) }}
{{- end }}
{{- $value = printf "[%s]" (join ", " $refs) }}
{{- else }}
{{- $value = include "canaryflow.celString" (get . $field) }}
{{- end }}
{{- $items = append $items (printf "%s: %s" (include "canaryflow.celString" .repository) $value) }}
{{- end }}
{{- printf "{%s}" (join ", " $items) }}
{{- end }}

{{/* Tekton: the EventListener's service account. */}}
{{- define "canaryflow.triggersServiceAccount" -}}
{{- printf "%s-triggers" (include "canaryflow.fullname" .) }}
{{- end }}

{{/* The service account go-test and go-build run as (no API access of its own). */}}
{{- define "canaryflow.buildServiceAccountName" -}}
{{- default (printf "%s-build" (include "canaryflow.namePrefix" .)) .Values.buildServiceAccount.name }}
{{- end }}

{{/* The claim GOCACHE and GOMODCACHE live on. */}}
{{- define "canaryflow.goCacheClaim" -}}
{{- default (printf "%s-go-cache" (include "canaryflow.namePrefix" .)) .Values.go.cache.persistentVolumeClaim.name }}
{{- end }}

{{/*
Requests and limits of one task: its class (resources.go for go-test and go-build,
resources.tasks for the rest) with resources.perTask.<task> merged over it, key by key
(`requests.cpu`, `limits.memory`...); a null in perTask drops the class's key for that task.
Called with (dict "root" $ "class" "go"|"tasks" "task" NAME) by the generated templates.
*/}}
{{- define "canaryflow.taskResources" -}}
{{- $resources := deepCopy (get .root.Values.resources .class | default dict) }}
{{- $own := get (.root.Values.resources.perTask | default dict) .task | default dict }}
{{- range $section, $entries := $own }}
{{- if kindIs "invalid" $entries }}
{{- $_ := unset $resources $section }}
{{- else }}
{{- $merged := deepCopy (get $resources $section | default dict) }}
{{- range $key, $value := $entries }}
{{- if kindIs "invalid" $value }}{{ $_ := unset $merged $key }}{{ else }}{{ $_ := set $merged $key $value }}{{ end }}
{{- end }}
{{- $_ := set $resources $section $merged }}
{{- end }}
{{- end }}
{{- toYaml $resources }}
{{- end }}

{{/* The submitter policy and its binding (cluster-scoped: the release namespace in the name). */}}
{{- define "canaryflow.submitterPolicyName" -}}
{{- printf "%s-submitters-%s" (include "canaryflow.fullname" .) .Release.Namespace | trunc 253 | trimSuffix "-" }}
{{- end }}

{{/*
The spec of every `helm test` Pod (the doctor's and each release account's rights check) but its
account and containers: scheduled and pulled as the release pods are (imagePullSecrets,
nodeSelector, tolerations, affinity, priorityClassName), never restarted, non-root.
*/}}
{{- define "canaryflow.testPodScheduling" -}}
restartPolicy: Never
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . | toJson }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- end }}
