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

{{/* Labels the StatefulSet and the Services select pods by (immutable once installed):
selectorLabels when given (values-original.yaml: the original deployment's), else app=<name> and
the release. */}}
{{- define "rabbitmq.selectorLabels" -}}
{{- if .Values.selectorLabels -}}
{{ toYaml .Values.selectorLabels }}
{{- else -}}
app: {{ include "rabbitmq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- end -}}

{{/* Labels of the pod: the selector's, then podLabels, then the common labels (the first wins). */}}
{{- define "rabbitmq.podLabels" -}}
{{- $selector := include "rabbitmq.selectorLabels" . | fromYaml -}}
{{- $common := include "rabbitmq.labels" . | fromYaml -}}
{{- toYaml (merge $selector (deepCopy (.Values.podLabels | default dict)) $common) -}}
{{- end -}}

{{/* Name of the client Service (the host the services connect to); default: name. */}}
{{- define "rabbitmq.serviceName" -}}
{{- .Values.service.name | default (include "rabbitmq.name" .) -}}
{{- end -}}

{{/* The StatefulSet's governing Service (spec.serviceName, immutable); default: <name>-headless. */}}
{{- define "rabbitmq.governingService" -}}
{{- .Values.governingServiceName | default (printf "%s-headless" (include "rabbitmq.name" .)) -}}
{{- end -}}

{{/* The data volume's claim when the chart does not use a volumeClaimTemplate: an existing claim,
or the chart's own standalone one (persistence.standaloneClaim); empty: a volumeClaimTemplate. */}}
{{- define "rabbitmq.claimName" -}}
{{- if .Values.persistence.existingClaim -}}
{{- .Values.persistence.existingClaim -}}
{{- else if .Values.persistence.standaloneClaim -}}
{{- printf "%s-data" (include "rabbitmq.name" .) -}}
{{- end -}}
{{- end -}}

{{/* Secret holding definitions.json (it contains the user's password). */}}
{{- define "rabbitmq.definitionsSecret" -}}
{{- .Values.auth.existingDefinitionsSecret | default (printf "%s-definitions" (include "rabbitmq.name" .)) -}}
{{- end -}}

{{/* definitions.json: the users, the vhost, their permissions and the two durable queues. */}}
{{- define "rabbitmq.definitions" -}}
{{- $vhost := .Values.vhost -}}
{{- $noArgs := dict -}}
{{- $video := .Values.queues.video -}}
{{- $dlqName := printf "%s%s" $video .Values.queues.deadLetterSuffix -}}
{{- $queue := dict "name" $video "vhost" $vhost "durable" true "auto_delete" false "arguments" $noArgs -}}
{{- $dlq := dict "name" $dlqName "vhost" $vhost "durable" true "auto_delete" false "arguments" $noArgs -}}
{{- $admin := dict "name" (required "auth.username is required" .Values.auth.username) "password" (required "auth.password is required" .Values.auth.password) "tags" (ternary (list) (list .Values.auth.tags) (empty .Values.auth.tags)) -}}
{{- $gw := .Values.serviceUsers.gateway -}}
{{- $conv := .Values.serviceUsers.converter -}}
{{- $users := list $admin
      (dict "name" (required "serviceUsers.gateway.username is required" $gw.username) "password" (required "serviceUsers.gateway.password is required" $gw.password) "tags" (list))
      (dict "name" (required "serviceUsers.converter.username is required" $conv.username) "password" (required "serviceUsers.converter.password is required" $conv.password) "tags" (list)) -}}
{{- /* Permissions are regular expressions on resource names; the default exchange is amq.default. */ -}}
{{- $videoRe := printf "^%s$" (regexQuoteMeta $video) -}}
{{- $perms := list
      (dict "user" .Values.auth.username "vhost" $vhost "configure" ".*" "write" ".*" "read" ".*")
      (dict "user" $gw.username "vhost" $vhost "configure" $videoRe "write" "^amq\\.default$" "read" "^$")
      (dict "user" $conv.username "vhost" $vhost "configure" (printf "^(%s|%s)$" (regexQuoteMeta $video) (regexQuoteMeta $dlqName)) "write" "^amq\\.default$" "read" $videoRe) -}}
{{- if .Values.guest.enabled -}}
{{- $users = append $users (dict "name" "guest" "password" (required "guest.password is required" .Values.guest.password) "tags" (list)) -}}
{{- $perms = append $perms (dict "user" "guest" "vhost" $vhost "configure" ".*" "write" ".*" "read" ".*") -}}
{{- end -}}
{{- $defs := dict "users" $users "vhosts" (list (dict "name" $vhost)) "permissions" $perms "queues" (list $queue $dlq) "exchanges" (list) "bindings" (list) -}}
{{- toPrettyJson $defs -}}
{{- end -}}
