{{/* Names, labels and the blocks every pod shares: defined once, used by every template. */}}

{{- define "kubeline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubeline.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's name: "kubeline.component" (dict "root" $ "component" "mlflow"). */}}
{{- define "kubeline.component" -}}
{{- printf "%s-%s" (include "kubeline.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubeline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubeline.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kubeline.labels" -}}
{{ include "kubeline.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: kubeline
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata for a resource: name, namespace, labels, annotations (common + extra). */}}
{{- define "kubeline.metadata" -}}
name: {{ .name | default (include "kubeline.component" .) }}
namespace: {{ .namespace | default .root.Release.Namespace }}
labels:
  {{- include "kubeline.labels" . | nindent 2 }}
{{- $annotations := merge (dict) (.annotations | default dict) (.root.Values.commonAnnotations | default dict) }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* An image reference: repository@digest when a digest is given, else repository:tag. */}}
{{- define "kubeline.image" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}
{{- end -}}

{{/* The pod template's metadata and the pod-level fields every component shares.
     "kubeline.podMeta" (dict "root" $ "component" "mlflow" "values" .Values.mlflow) */}}
{{- define "kubeline.podMeta" -}}
labels:
  {{- include "kubeline.selectorLabels" . | nindent 2 }}
  app.kubernetes.io/part-of: kubeline
  {{- with .root.Values.commonLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with .values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod spec fields: no service account token, pull secrets, security context, scheduling. */}}
{{- define "kubeline.podSpec" -}}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml (.values.podSecurityContext | default .root.Values.defaultPodSecurityContext) | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "kubeline.containerSecurityContext" -}}
{{- toYaml (.values.containerSecurityContext | default .root.Values.defaultContainerSecurityContext) -}}
{{- end -}}

{{/* The namespace the pipeline pods run in. */}}
{{- define "kubeline.pipelinesNamespace" -}}
{{- .Values.pipelines.namespace | default .Release.Namespace -}}
{{- end -}}

{{/* In-cluster DNS name of a component's Service. */}}
{{- define "kubeline.serviceHost" -}}
{{- printf "%s.%s.svc.%s" (include "kubeline.component" .) .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{- define "kubeline.s3Endpoint" -}}
{{- if .Values.settings.s3EndpointUrl -}}
{{- .Values.settings.s3EndpointUrl -}}
{{- else if .Values.s3.enabled -}}
{{- printf "http://%s:%d" (include "kubeline.serviceHost" (dict "root" . "component" "s3")) (int .Values.s3.port) -}}
{{- end -}}
{{- end -}}

{{- define "kubeline.mlflowUri" -}}
{{- if .Values.settings.mlflowTrackingUri -}}
{{- .Values.settings.mlflowTrackingUri -}}
{{- else if .Values.mlflow.enabled -}}
{{- printf "http://%s:%d" (include "kubeline.serviceHost" (dict "root" . "component" "mlflow")) (int .Values.mlflow.service.port) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the S3 credentials every consumer reads ("" when there is none). */}}
{{- define "kubeline.s3SecretName" -}}
{{- if .Values.s3.auth.existingSecret -}}
{{- .Values.s3.auth.existingSecret -}}
{{- else if .Values.s3.enabled -}}
{{- .Values.s3.auth.secretName -}}
{{- end -}}
{{- end -}}

{{/* Where the service writes its inference log (and the monitor reads it): the value, else
     beside MLflow's artifacts, s3://<s3.bucket>/inference-log (the release's S3 or the
     external one the settings name). */}}
{{- define "kubeline.inferenceLogLocation" -}}
{{- .Values.serving.inferenceLog.location | default (printf "s3://%s/inference-log" .Values.s3.bucket) -}}
{{- end -}}

{{/* The Secret holding the service's admin token ("" when /admin/reload is off). */}}
{{- define "kubeline.servingTokenSecret" -}}
{{- if .Values.serving.adminToken.enabled -}}
{{- .Values.serving.adminToken.existingSecret | default (include "kubeline.component" (dict "root" . "component" "serving-admin")) -}}
{{- end -}}
{{- end -}}

{{/* A generated credential, kept across upgrades: the live Secret's value when there is one
     (lookup answers nothing in `helm template` and dry runs, so those show a fresh value).
     "kubeline.keptSecret" (dict "root" $ "name" "x" "key" "k" "length" 32) -> base64 value */}}
{{- define "kubeline.keptSecret" -}}
{{- $live := lookup "v1" "Secret" .root.Release.Namespace .name -}}
{{- if and $live $live.data (hasKey $live.data .key) -}}
{{- index $live.data .key -}}
{{- else -}}
{{- randAlphaNum (int .length) | b64enc -}}
{{- end -}}
{{- end -}}

{{/* The MLflow server's allowed Host headers: the Service's DNS forms, with and without port,
     localhost on any port (kubectl port-forward), the ingress host and any extra. */}}
{{- define "kubeline.mlflowAllowedHosts" -}}
{{- $svc := include "kubeline.component" (dict "root" . "component" "mlflow") -}}
{{- $ns := .Release.Namespace -}}
{{- $port := int .Values.mlflow.service.port -}}
{{- $hosts := list -}}
{{- range (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain)) -}}
{{- $hosts = append $hosts . -}}
{{- $hosts = append $hosts (printf "%s:%d" . $port) -}}
{{- end -}}
{{- $hosts = concat $hosts (list "localhost" "localhost:*" "127.0.0.1" "127.0.0.1:*") -}}
{{- if .Values.mlflow.ingress.enabled -}}
{{- $hosts = append $hosts .Values.mlflow.ingress.host -}}
{{- end -}}
{{- range .Values.mlflow.extraAllowedHosts -}}
{{- $hosts = append $hosts . -}}
{{- end -}}
{{- join "," $hosts -}}
{{- end -}}

{{/* Refuse values that cannot work, with one sentence saying what to set. */}}
{{- define "kubeline.validate" -}}
{{- if and .Values.serving.enabled (not (include "kubeline.mlflowUri" .)) -}}
{{- fail "serving.enabled: the service needs a registry; enable mlflow or set settings.mlflowTrackingUri" -}}
{{- end -}}
{{- if and .Values.serving.enabled .Values.serving.autoscaling.enabled (gt (int .Values.serving.autoscaling.minReplicas) (int .Values.serving.autoscaling.maxReplicas)) -}}
{{- fail "serving.autoscaling.minReplicas: it is above maxReplicas; lower it or raise maxReplicas" -}}
{{- end -}}
{{- if and .Values.monitor.enabled (not (include "kubeline.mlflowUri" .)) -}}
{{- fail "monitor.enabled: the monitor needs a registry; enable mlflow or set settings.mlflowTrackingUri" -}}
{{- end -}}
{{- if and .Values.mlflow.enabled (not .Values.postgres.enabled) (not .Values.mlflow.backendStore.existingSecret) -}}
{{- fail "mlflow.backendStore.existingSecret: with postgres.enabled false, name a Secret holding the backend-store URI" -}}
{{- end -}}
{{- if and (not .Values.s3.enabled) .Values.s3.bucketJob.enabled (not .Values.s3.auth.existingSecret) -}}
{{- fail "s3.auth.existingSecret: with s3.enabled false the bucket Job needs the external store's credentials; name their Secret or set s3.bucketJob.enabled false" -}}
{{- end -}}
{{- if and .Values.kfp.uploadPipelines (not .Values.kfp.host) -}}
{{- fail "kfp.host: the upload Job (kfp.uploadPipelines) needs the KFP API's URL, e.g. http://ml-pipeline.kubeflow.svc.cluster.local:8888" -}}
{{- end -}}
{{- if and .Values.kfpLauncher.enabled (not (include "kubeline.s3Endpoint" .)) -}}
{{- fail "kfpLauncher.enabled: KFP needs an S3 endpoint; enable s3 or set settings.s3EndpointUrl" -}}
{{- end -}}
{{- end -}}

{{/* checkov skips, as the annotations checkov reads (comments do not survive rendering): one per
     check a resource cannot meet, each with its reason. Images by tag are a choice of values;
     a digest removes that skip.
     fromYaml (include "kubeline.checkovSkips" (dict "images" (list .Values.x.image) "skips" (list "CKV_K8S_35=why"))) */}}
{{- define "kubeline.checkovSkips" -}}
{{- $skips := .skips | default list -}}
{{- $byTag := false -}}
{{- $notAlways := false -}}
{{- range .images -}}
{{- if not .digest }}{{ $byTag = true }}{{ end -}}
{{- if ne .pullPolicy "Always" }}{{ $notAlways = true }}{{ end -}}
{{- end -}}
{{- if $byTag -}}
{{- $skips = append $skips "CKV_K8S_43=images by tag from values (never latest); set image.digest to pin one" -}}
{{- end -}}
{{- if $notAlways -}}
{{- $skips = append $skips "CKV_K8S_15=pullPolicy is a value: IfNotPresent with a fixed tag or digest, Never on kind where images are loaded, not pulled" -}}
{{- end -}}
{{- range $i, $skip := $skips }}
checkov.io/skip{{ add1 $i }}: {{ $skip | quote }}
{{- end -}}
{{- end -}}
