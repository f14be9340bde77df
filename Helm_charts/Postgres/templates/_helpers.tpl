{{/* Name of every object of this chart. */}}
{{- define "postgres.name" -}}
{{- .Values.name | default "postgres" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "postgres.labels" -}}
app: {{ include "postgres.name" . }}
app.kubernetes.io/name: {{ include "postgres.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vidconv
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels the Service selects pods by. */}}
{{- define "postgres.selectorLabels" -}}
app: {{ include "postgres.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Secret holding POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB. */}}
{{- define "postgres.secretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-secret" (include "postgres.name" .)) -}}
{{- end -}}
