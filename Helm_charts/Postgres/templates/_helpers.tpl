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

{{/* Labels the StatefulSet and the Services select pods by (immutable once installed):
selectorLabels when given (values-original.yaml: the original deployment's), else app=<name> and
the release. */}}
{{- define "postgres.selectorLabels" -}}
{{- if .Values.selectorLabels -}}
{{ toYaml .Values.selectorLabels }}
{{- else -}}
app: {{ include "postgres.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- end -}}

{{/* Labels of the pod: the selector's, then podLabels, then the common labels (the first wins). */}}
{{- define "postgres.podLabels" -}}
{{- $selector := include "postgres.selectorLabels" . | fromYaml -}}
{{- $common := include "postgres.labels" . | fromYaml -}}
{{- toYaml (merge $selector (deepCopy (.Values.podLabels | default dict)) $common) -}}
{{- end -}}

{{/* Name of the client Service (the host the services connect to); default: name. */}}
{{- define "postgres.serviceName" -}}
{{- .Values.service.name | default (include "postgres.name" .) -}}
{{- end -}}

{{/* The StatefulSet's governing Service (spec.serviceName, immutable); default: <name>-headless. */}}
{{- define "postgres.governingService" -}}
{{- .Values.governingServiceName | default (printf "%s-headless" (include "postgres.name" .)) -}}
{{- end -}}

{{/* The data volume's claim when the chart does not use a volumeClaimTemplate: an existing claim,
or the chart's own standalone one (persistence.standaloneClaim); empty: a volumeClaimTemplate. */}}
{{- define "postgres.claimName" -}}
{{- if .Values.persistence.existingClaim -}}
{{- .Values.persistence.existingClaim -}}
{{- else if .Values.persistence.standaloneClaim -}}
{{- printf "%s-data" (include "postgres.name" .) -}}
{{- end -}}
{{- end -}}

{{/* Secret holding POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB. */}}
{{- define "postgres.secretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-secret" (include "postgres.name" .)) -}}
{{- end -}}
