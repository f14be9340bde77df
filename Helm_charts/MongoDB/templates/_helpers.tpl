{{/* Name of every object of this chart. */}}
{{- define "mongodb.name" -}}
{{- .Values.name | default "mongodb" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "mongodb.labels" -}}
app: {{ include "mongodb.name" . }}
app.kubernetes.io/name: {{ include "mongodb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vidconv
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels the Service selects pods by. */}}
{{- define "mongodb.selectorLabels" -}}
app: {{ include "mongodb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Secret holding the root credentials. */}}
{{- define "mongodb.secretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-secret" (include "mongodb.name" .)) -}}
{{- end -}}
