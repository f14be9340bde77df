{{/* Labels on every object. */}}
{{- define "autoscaling.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: vidconv
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
app: {{ .name }}
{{- end -}}

{{/* Which autoscaler the converter gets: keda, hpa or none. */}}
{{- define "autoscaling.converterMode" -}}
{{- $mode := .Values.converter.autoscaler -}}
{{- if eq $mode "auto" -}}
{{- ternary "keda" "hpa" (.Capabilities.APIVersions.Has "keda.sh/v1alpha1/ScaledObject") -}}
{{- else -}}
{{- $mode -}}
{{- end -}}
{{- end -}}

{{/* A CPU HorizontalPodAutoscaler: dict name, deployment, min, max, cpu, root. */}}
{{- define "autoscaling.cpuHpa" -}}
{{- if gt (int .min) (int .max) }}
{{- fail (printf "%s: minReplicas %d is above maxReplicas %d" .name (int .min) (int .max)) }}
{{- end }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .name }}
  labels:
    {{- include "autoscaling.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .deployment }}
  minReplicas: {{ max 1 (int .min) }}
  maxReplicas: {{ .max }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .cpu }}
  behavior:
    scaleDown:
      # Five minutes of lower load before pods go (the default), one pod a minute.
      stabilizationWindowSeconds: 300
      policies:
        - type: Pods
          value: 1
          periodSeconds: 60
{{- end -}}
