{{/* The chart's name. */}}
{{- define "commitlog.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's resource name: the release name, or release-chart when it lacks the chart's
name. Pods are <fullname>-<ordinal>, which is each server's --node-name: kept short. */}}
{{- define "commitlog.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "commitlog.headless" -}}
{{- printf "%s-headless" (include "commitlog.fullname" .) -}}
{{- end -}}

{{- define "commitlog.selectorLabels" -}}
app.kubernetes.io/name: {{ include "commitlog.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "commitlog.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "commitlog.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: server
{{- end -}}

{{/* The scale-down Job's labels: not the servers' (the Services, the PodDisruptionBudget and the
anti-affinity select app.kubernetes.io/name with the instance). */}}
{{- define "commitlog.scaleDownSelectorLabels" -}}
app.kubernetes.io/name: {{ include "commitlog.name" . }}-scale-down
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "commitlog.scaleDownLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "commitlog.scaleDownSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: scale-down
{{- end -}}

{{/* The DNS domain of the headless Service: pods are <pod>.<this>. */}}
{{- define "commitlog.podDomain" -}}
{{- printf "%s.%s.svc.%s" (include "commitlog.headless" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/* The client Service's DNS names, as certificates must list them. */}}
{{- define "commitlog.serviceDNSNames" -}}
{{- $svc := include "commitlog.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) | toJson -}}
{{- end -}}

{{/* Whether TLS (and so the gossip key and the ACL) is on. */}}
{{- define "commitlog.secure" -}}
{{- if and .Values.tls.enabled (not .Values.insecurePlaintext) -}}true{{- end -}}
{{- end -}}

{{- define "commitlog.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "commitlog.fullname" .)) .Values.tls.secretName -}}
{{- end -}}

{{- define "commitlog.gossipSecretName" -}}
{{- default (printf "%s-gossip" (include "commitlog.fullname" .)) .Values.gossip.secretName -}}
{{- end -}}

{{- define "commitlog.bootstrapExpect" -}}
{{- $n := int .Values.replicas -}}
{{- if not (kindIs "invalid" .Values.bootstrapExpect) -}}{{- $n = int .Values.bootstrapExpect -}}{{- end -}}
{{- $n -}}
{{- end -}}

{{/* The replicas of the release's StatefulSet in the cluster, as `helm upgrade` looks it up; 0
on install, and whenever the chart is rendered without a cluster (`helm template`, Argo CD). */}}
{{- define "commitlog.currentReplicas" -}}
{{- $current := lookup "apps/v1" "StatefulSet" .Release.Namespace (include "commitlog.fullname" .) -}}
{{- if and .Release.IsUpgrade $current $current.spec -}}
{{- int $current.spec.replicas -}}
{{- else -}}
0
{{- end -}}
{{- end -}}

{{/* A quorum of the configured replicas. */}}
{{- define "commitlog.quorum" -}}
{{- add (div (int .Values.replicas) 2) 1 -}}
{{- end -}}

{{/* Checks on the values that would make a cluster that cannot form or is not safe. */}}
{{- define "commitlog.validate" -}}
{{- $replicas := int .Values.replicas -}}
{{- $expect := int (include "commitlog.bootstrapExpect" .) -}}
{{- if lt $replicas 1 -}}{{- fail "replicas must be at least 1" -}}{{- end -}}
{{- if lt $expect 1 -}}{{- fail "bootstrapExpect must be at least 1" -}}{{- end -}}
{{- if gt $expect $replicas -}}
{{- fail (printf "bootstrapExpect (%d) is more than replicas (%d): a new cluster would wait forever" $expect $replicas) -}}
{{- end -}}
{{- if le (mul $expect 2) $replicas -}}
{{- fail (printf "bootstrapExpect (%d) is not a majority of replicas (%d): two groups of new pods could each bootstrap a cluster" $expect $replicas) -}}
{{- end -}}
{{- if and (not .Values.insecurePlaintext) (not .Values.tls.enabled) -}}
{{- fail "tls.enabled=false leaves the API, Raft and gossip in plaintext: set insecurePlaintext=true to say so" -}}
{{- end -}}
{{- if and (include "commitlog.secure" .) (not (has .Values.tls.source (list "secret" "certManager" "csi"))) -}}
{{- fail (printf "tls.source must be secret, certManager or csi, not %q" .Values.tls.source) -}}
{{- end -}}
{{- if and (include "commitlog.secure" .) (eq .Values.tls.source "certManager") (not .Values.tls.certManager.issuerRef.name) -}}
{{- fail "tls.source=certManager needs tls.certManager.issuerRef.name" -}}
{{- end -}}
{{- if and (include "commitlog.secure" .) (eq .Values.tls.source "certManager") (gt $replicas (int .Values.tls.maxReplicas)) -}}
{{- fail (printf "replicas (%d) exceeds tls.maxReplicas (%d): the certificate would not name the new pods' nodes" $replicas (int .Values.tls.maxReplicas)) -}}
{{- end -}}
{{- if and (include "commitlog.secure" .) (eq .Values.tls.source "csi") (not .Values.tls.csi.issuerRef.name) -}}
{{- fail "tls.source=csi needs tls.csi.issuerRef.name" -}}
{{- end -}}
{{- /* Scaling down: the StatefulSet (Parallel) deletes every removed pod at once. With
scaleDown.removeFromRaft (the default), the pre-upgrade hook Job (job-scale-down.yaml) has removed
them from Raft, one at a time while they all still run, before the StatefulSet shrinks: any
scale-down keeps the quorum. Without it, each is still a voter until `cluster remove`, and losing
more than a minority of the voters at once loses the quorum, which `cluster remove` needs. The
StatefulSet's current size (lookup: an upgrade against a cluster; nothing with `helm template`)
stands for the voters. */ -}}
{{- $from := int (include "commitlog.currentReplicas" .) -}}
{{- if and (not .Values.scaleDown.removeFromRaft) (not .Values.allowScaleDownBeyondMinority) (lt $replicas $from) (gt (sub $from $replicas) (div (sub $from 1) 2)) -}}
{{- fail (printf "replicas %d -> %d stops %d of %d servers at once, more than the %d a cluster of %d voters can lose: it would lose its quorum (and `cluster remove` needs one). Leave scaleDown.removeFromRaft on (the chart removes them from Raft first); or scale down by at most %d at a time and run `cluster remove` for the removed pods after each step; or run `cluster remove` for every pod to be removed first, then set allowScaleDownBeyondMinority=true" $from $replicas (sub $from $replicas) $from (div (sub $from 1) 2) $from (div (sub $from 1) 2)) -}}
{{- end -}}
{{- /* The data dir is a 0700 subdirectory of a volume whose root the kubelet makes group-writable
for fsGroup. A kubelet that applies fsGroup to the whole volume at a mount (fsGroupChangePolicy
Always, Kubernetes' default when the field is unset) makes it 2770 too, and the server refuses a
data dir others may write: every pod started again on its volume would exit at once. */ -}}
{{- $fsPolicy := dig "fsGroupChangePolicy" "" (.Values.podSecurityContext | default dict) -}}
{{- if ne $fsPolicy "OnRootMismatch" -}}
{{- fail (printf "podSecurityContext.fsGroupChangePolicy must be OnRootMismatch, not %q: otherwise the kubelet makes every file of a volume group-writable for fsGroup at each mount (Kubernetes' default, Always), and the server refuses its data dir when its pod starts again (/data/commitlog is writable by group or others)" (toString $fsPolicy)) -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) -}}
{{- $min := .Values.podDisruptionBudget.minAvailable -}}
{{- $minPods := 0 -}}
{{- if and (kindIs "string" $min) (hasSuffix "%" $min) -}}
{{- /* A percentage of the replicas, rounded up, as Kubernetes counts it. */ -}}
{{- $minPods = div (add (mul (int (trimSuffix "%" $min)) $replicas) 99) 100 -}}
{{- else -}}
{{- $minPods = int $min -}}
{{- end -}}
{{- if lt (int $minPods) (int (include "commitlog.quorum" .)) -}}
{{- fail (printf "podDisruptionBudget.minAvailable (%v) is below a quorum of %d replicas (%s): an eviction could stop the cluster" .Values.podDisruptionBudget.minAvailable $replicas (include "commitlog.quorum" .)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* GOMEMLIMIT for a container memory limit (a Kubernetes quantity: 512Mi, 1Gi, 1500M, 1.5Gi,
536870912): 90% of it, in bytes, leaving room for what Go's soft limit does not govern. */}}
{{- define "commitlog.goMemLimit" -}}
{{- $q := toString . -}}
{{- if not (regexMatch `^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$` $q) -}}
{{- fail (printf "resources.limits.memory %q: want a number of bytes with an optional suffix Ki, Mi, Gi, Ti, k, M, G or T (for GOMEMLIMIT)" $q) -}}
{{- end -}}
{{- $num := regexReplaceAll `^([0-9.]+).*$` $q "${1}" -}}
{{- $unit := regexReplaceAll `^[0-9.]+` $q "" -}}
{{- $mult := get (dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776) $unit -}}
{{- if contains "." $num -}}
{{- printf "%d" (int64 (floor (divf (mulf $num $mult 9) 10))) -}}
{{- else -}}
{{- printf "%d" (div (mul (int64 $num) $mult 9) 10) -}}
{{- end -}}
{{- end -}}
