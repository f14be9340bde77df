{{/* Labels on every object. */}}
{{- define "monitoring.labels" -}}
app.kubernetes.io/name: vidconv-monitoring
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vidconv
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Whether to render the operator's kinds. */}}
{{- define "monitoring.operator" -}}
{{- /* YAML 1.1 reads an unquoted on/off as true/false. */ -}}
{{- $mode := toString .Values.prometheusOperator | replace "true" "on" | replace "false" "off" -}}
{{- if eq $mode "auto" -}}
{{- ternary "on" "off" (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor") -}}
{{- else -}}
{{- $mode -}}
{{- end -}}
{{- end -}}
