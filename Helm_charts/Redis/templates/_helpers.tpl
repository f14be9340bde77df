{{/* Name of every object of this chart. */}}
{{- define "redis.name" -}}
{{- .Values.name | default "redis" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "redis.labels" -}}
app: {{ include "redis.name" . }}
app.kubernetes.io/name: {{ include "redis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vidconv
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels the Service selects pods by. */}}
{{- define "redis.selectorLabels" -}}
app: {{ include "redis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Secret holding the password (REDIS_PASSWORD for redis-cli, auth.conf for the server). */}}
{{- define "redis.secretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-secret" (include "redis.name" .)) -}}
{{- end -}}
