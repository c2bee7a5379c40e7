"""The chart's PodMonitor: Prometheus Operator scraping the released pods with exactly the
relabeling the analysis expects (``canaryflow.kubernetes.scrape``, the one place the rules
live; the test bed reads them there too)."""

from __future__ import annotations

import yaml

from canaryflow.kubernetes.scrape import pod_relabelings

_TRACK = "__canaryflow_track_label__"

_TEMPLATE = """\
{{{{- with .Values.monitoring.podMonitor }}}}
{{{{- if .enabled }}}}
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata:
  name: {{{{ include "canaryflow.fullname" $ }}}}
  namespace: {{{{ $.Release.Namespace }}}}
  labels:
    {{{{- include "canaryflow.labels" $ | nindent 4 }}}}
    app.kubernetes.io/component: monitoring
    {{{{- with .labels }}}}
    {{{{- toYaml . | nindent 4 }}}}
    {{{{- end }}}}
spec:
  namespaceSelector:
    matchNames: {{{{ include "canaryflow.releaseNamespaces" $ }}}}
  selector:
    {{{{- if .selector }}}}
    {{{{- toYaml .selector | nindent 4 }}}}
    {{{{- else }}}}
    matchLabels: {{}}
    {{{{- end }}}}
  podMetricsEndpoints:
    - port: {{{{ .port | toJson }}}}
      path: {{{{ .path | toJson }}}}
      interval: {{{{ .interval | toJson }}}}
      relabelings:
{rules}
{{{{- end }}}}
{{{{- end }}}}
"""


def pod_monitor_template() -> str:
    """``templates/generated/podmonitor.yaml``: the rules of ``pod_relabelings``, the track
    label from ``monitoring.podMonitor.trackLabel``. By default every pod of the release
    namespaces that names the metrics port: a service's pods carry ``app`` or
    ``app.kubernetes.io/name`` (the contract), and a label selector cannot say "either"."""
    rules = yaml.safe_dump(pod_relabelings(_TRACK), sort_keys=False, default_flow_style=False)
    indented = "\n".join(f"        {line}" for line in rules.splitlines())
    indented = indented.replace(_TRACK, "{{ $.Values.monitoring.podMonitor.trackLabel | toJson }}")
    return _TEMPLATE.format(rules=indented)
