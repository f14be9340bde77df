{{/* Name of every object of this chart. */}}
{{- define "rabbitmq.name" -}}
{{- .Values.name | default "rabbitmq" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "rabbitmq.labels" -}}
app: {{ include "rabbitmq.name" . }}
app.kubernetes.io/name: {{ include "rabbitmq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vidconv
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels the Services select pods by. */}}
{{- define "rabbitmq.selectorLabels" -}}
app: {{ include "rabbitmq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Secret holding definitions.json (it contains the user's password). */}}
{{- define "rabbitmq.definitionsSecret" -}}
{{- .Values.auth.existingDefinitionsSecret | default (printf "%s-definitions" (include "rabbitmq.name" .)) -}}
{{- end -}}

{{/* definitions.json: the user, the vhost, its permissions and the two durable queues. */}}
{{- define "rabbitmq.definitions" -}}
{{- $vhost := .Values.vhost -}}
{{- $noArgs := dict -}}
{{- $queue := dict "name" .Values.queues.video "vhost" $vhost "durable" true "auto_delete" false "arguments" $noArgs -}}
{{- $dlq := dict "name" (printf "%s%s" .Values.queues.video .Values.queues.deadLetterSuffix) "vhost" $vhost "durable" true "auto_delete" false "arguments" $noArgs -}}
{{- $user := dict "name" (required "auth.username is required" .Values.auth.username) "password" (required "auth.password is required" .Values.auth.password) "tags" (ternary (list) (list .Values.auth.tags) (empty .Values.auth.tags)) -}}
{{- $perm := dict "user" .Values.auth.username "vhost" $vhost "configure" ".*" "write" ".*" "read" ".*" -}}
{{- $defs := dict "users" (list $user) "vhosts" (list (dict "name" $vhost)) "permissions" (list $perm) "queues" (list $queue $dlq) "exchanges" (list) "bindings" (list) -}}
{{- toPrettyJson $defs -}}
{{- end -}}
