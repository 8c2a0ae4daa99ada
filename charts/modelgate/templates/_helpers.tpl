{{/* Names ------------------------------------------------------------------------------- */}}

{{- define "modelgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelgate.fullname" -}}
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

{{- define "modelgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelgate.labels" -}}
helm.sh/chart: {{ include "modelgate.chart" . }}
app.kubernetes.io/name: {{ include "modelgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of the webhook pods. */}}
{{- define "modelgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "modelgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modelgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "modelgate.auditorServiceAccountName" -}}
{{- default (printf "%s-auditor" (include "modelgate.fullname" .)) .Values.auditor.serviceAccount.name -}}
{{- end -}}

{{- define "modelgate.tlsSecretName" -}}
{{- if eq .Values.tls.mode "existingSecret" -}}
{{- .Values.tls.existingSecret.name -}}
{{- else -}}
{{- printf "%s-tls" (include "modelgate.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the auditor's log checkpoint signing key. */}}
{{- define "modelgate.logSigningSecretName" -}}
{{- if eq .Values.auditor.logSigning.mode "existingSecret" -}}
{{- required "auditor.logSigning.existingSecret.name is required when auditor.logSigning.mode is existingSecret" .Values.auditor.logSigning.existingSecret.name -}}
{{- else -}}
{{- printf "%s-log-signing" (include "modelgate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The generated log signing key (base64 PEM): the one already in the cluster, else a new
Ed25519 key, so upgrades keep the key every earlier checkpoint was signed with. */}}
{{- define "modelgate.generatedLogSigningKey" -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "modelgate.logSigningSecretName" .) -}}
{{- $key := .Values.auditor.logSigning.secretKey -}}
{{- if and $existing $existing.data (hasKey $existing.data $key) -}}
{{- index $existing.data $key -}}
{{- else -}}
{{- genPrivateKey "ed25519" | b64enc -}}
{{- end -}}
{{- end -}}

{{- define "modelgate.policyConfigMapName" -}}
{{- if eq .Values.policies.source "existingConfigMap" -}}
{{- .Values.policies.existingConfigMap.name -}}
{{- else -}}
{{- printf "%s-policies" (include "modelgate.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The service DNS names the serving certificate must cover. */}}
{{- define "modelgate.serviceDNSNames" -}}
{{- $svc := include "modelgate.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson -}}
{{- end -}}

{{- define "modelgate.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag | toString -}}
{{- if eq $tag "latest" -}}
{{- fail "image.tag: `latest` is not allowed; pin a release tag (default: the chart's appVersion)" -}}
{{- end -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{/* Validation of value combinations: included by every always-rendered template. ---------- */}}

{{- define "modelgate.validate" -}}
{{- /* every template includes this; report a bad value once, not once per template */ -}}
{{- if not (hasKey .Values "__modelgateValidated") -}}
{{- $_ := set .Values "__modelgateValidated" true -}}
{{- include "modelgate.validateDatabase" . -}}
{{- include "modelgate.validateDashboard" . -}}
{{- $modes := list "certManager" "generated" "existingSecret" -}}
{{- if not (has .Values.tls.mode $modes) -}}
{{- fail (printf "tls.mode must be one of certManager, generated, existingSecret (got %q)" (toString .Values.tls.mode)) -}}
{{- end -}}
{{- if eq .Values.tls.mode "existingSecret" -}}
{{- if not .Values.tls.existingSecret.name -}}
{{- fail "tls.mode=existingSecret needs tls.existingSecret.name (a kubernetes.io/tls Secret in the release namespace)" -}}
{{- end -}}
{{- if not .Values.tls.existingSecret.caBundle -}}
{{- fail "tls.mode=existingSecret needs tls.existingSecret.caBundle (base64 PEM of the CA that signed the Secret's certificate), or the API server cannot verify the webhook" -}}
{{- end -}}
{{- else if .Values.tls.existingSecret.name -}}
{{- fail (printf "tls.existingSecret.name is set but tls.mode is %q; set tls.mode=existingSecret or remove it" .Values.tls.mode) -}}
{{- end -}}
{{- if and (ne .Values.tls.mode "existingSecret") .Values.tls.existingSecret.caBundle -}}
{{- fail "tls.existingSecret.caBundle is only used with tls.mode=existingSecret" -}}
{{- end -}}
{{- if and (ne .Values.tls.mode "certManager") .Values.tls.certManager.issuerRef -}}
{{- fail "tls.certManager.issuerRef is only used with tls.mode=certManager" -}}
{{- end -}}
{{- if and (eq .Values.tls.mode "certManager") .Values.webhook.url -}}
{{- fail "tls.mode=certManager cannot be combined with webhook.url: cert-manager injects the CA for in-cluster Services only; use tls.mode=existingSecret with tls.existingSecret.caBundle" -}}
{{- end -}}
{{- if and .Values.webhook.url (not (hasPrefix "https://" .Values.webhook.url)) -}}
{{- fail (printf "webhook.url must start with https:// (got %q)" .Values.webhook.url) -}}
{{- end -}}
{{- if and (eq .Values.tls.mode "generated") .Values.webhook.url -}}
{{- fail "tls.mode=generated cannot be combined with webhook.url: the generated certificate names the in-cluster Service only, so the API server would reject the URL's host; use tls.mode=existingSecret with a certificate for that host and tls.existingSecret.caBundle" -}}
{{- end -}}
{{- if not (has .Values.auditor.logSigning.mode (list "generated" "existingSecret")) -}}
{{- fail (printf "auditor.logSigning.mode must be generated or existingSecret (got %q)" (toString .Values.auditor.logSigning.mode)) -}}
{{- end -}}
{{- if and (eq .Values.auditor.logSigning.mode "existingSecret") .Values.auditor.enabled .Values.auditor.logSigning.enabled (not .Values.auditor.logSigning.existingSecret.name) -}}
{{- fail "auditor.logSigning.mode=existingSecret needs auditor.logSigning.existingSecret.name (a Secret holding the Ed25519 private key)" -}}
{{- end -}}
{{- if and (ne .Values.auditor.logSigning.mode "existingSecret") .Values.auditor.logSigning.existingSecret.name -}}
{{- fail (printf "auditor.logSigning.existingSecret.name is set but auditor.logSigning.mode is %q; set auditor.logSigning.mode=existingSecret or remove it" .Values.auditor.logSigning.mode) -}}
{{- end -}}
{{- if not (has .Values.webhook.failurePolicy (list "Fail" "Ignore")) -}}
{{- fail (printf "webhook.failurePolicy must be Fail or Ignore (got %q)" (toString .Values.webhook.failurePolicy)) -}}
{{- end -}}
{{- $timeout := int .Values.webhook.timeoutSeconds -}}
{{- if or (lt $timeout 1) (gt $timeout 30) -}}
{{- fail (printf "webhook.timeoutSeconds must be between 1 and 30 (got %v)" .Values.webhook.timeoutSeconds) -}}
{{- end -}}
{{- if lt (int .Values.replicaCount) 1 -}}
{{- fail "replicaCount must be at least 1 (2 or more recommended)" -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (not .Values.autoscaling.enabled) (lt (int .Values.replicaCount) 2) -}}
{{- fail "podDisruptionBudget.enabled needs replicaCount >= 2: with a single replica the budget would block every node drain (set replicaCount: 2 or more, or podDisruptionBudget.enabled=false)" -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (not .Values.autoscaling.enabled) (ge (int .Values.podDisruptionBudget.minAvailable) (int .Values.replicaCount)) -}}
{{- fail (printf "podDisruptionBudget.minAvailable (%v) must be lower than replicaCount (%v), or no pod can ever be evicted" .Values.podDisruptionBudget.minAvailable .Values.replicaCount) -}}
{{- end -}}
{{- if not (has .Values.podAntiAffinity (list "soft" "hard" "none")) -}}
{{- fail (printf "podAntiAffinity must be soft, hard or none (got %q)" (toString .Values.podAntiAffinity)) -}}
{{- end -}}
{{- if not (has .Values.policies.source (list "bundled" "inline" "existingConfigMap")) -}}
{{- fail (printf "policies.source must be bundled, inline or existingConfigMap (got %q)" (toString .Values.policies.source)) -}}
{{- end -}}
{{- if and (eq .Values.policies.source "inline") (not .Values.policies.inline) -}}
{{- fail "policies.source=inline needs policies.inline (map of relative path to file content)" -}}
{{- end -}}
{{- if and (ne .Values.policies.source "inline") .Values.policies.inline -}}
{{- fail "policies.inline is set but policies.source is not inline" -}}
{{- end -}}
{{- if and (eq .Values.policies.source "existingConfigMap") (not .Values.policies.existingConfigMap.name) -}}
{{- fail "policies.source=existingConfigMap needs policies.existingConfigMap.name" -}}
{{- end -}}
{{- if not (has .Values.config.failureMode (list "closed" "open")) -}}
{{- fail (printf "config.failureMode must be closed or open (got %q)" (toString .Values.config.failureMode)) -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled .Values.networkPolicy.restrictEgress (not .Values.networkPolicy.egressTo) -}}
{{- fail "networkPolicy.restrictEgress needs networkPolicy.egressTo: with DNS alone the webhook cannot reach its PostgreSQL database (add a rule for the database, e.g. its CIDR and port 5432)" -}}
{{- end -}}
{{- if not .Values.clusterName -}}
{{- fail "clusterName must not be empty (it names this cluster in the inventory)" -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.apiServerCIDRs) (not .Values.networkPolicy.ingressFrom) -}}
{{- fail "networkPolicy.enabled needs networkPolicy.apiServerCIDRs or networkPolicy.ingressFrom: an ingress rule without sources would admit any caller" -}}
{{- end -}}
{{- if and .Values.webhook.clientAuth.enabled (not .Values.webhook.clientAuth.caSecret) -}}
{{- fail "webhook.clientAuth.enabled needs webhook.clientAuth.caSecret (a Secret with the PEM CA of the API server's client certificate under ca.crt)" -}}
{{- end -}}
{{- if and .Values.webhook.clientAuth.enabled (eq (int .Values.webhook.clientAuth.probePort) (int .Values.containerPort)) -}}
{{- fail "webhook.clientAuth.probePort must differ from containerPort" -}}
{{- end -}}
{{- if ge (float64 .Values.config.policyTimeoutSeconds) (float64 .Values.webhook.timeoutSeconds) -}}
{{- fail (printf "config.policyTimeoutSeconds (%v) must be below webhook.timeoutSeconds (%v), or the API server gives up before the webhook answers" .Values.config.policyTimeoutSeconds .Values.webhook.timeoutSeconds) -}}
{{- end -}}
{{- if gt (float64 .Values.server.queueSeconds) (float64 .Values.config.policyTimeoutSeconds) -}}
{{- fail "server.queueSeconds must not exceed config.policyTimeoutSeconds" -}}
{{- end -}}
{{- if .Values.autoscaling.enabled -}}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) -}}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (le (int .Values.autoscaling.minReplicas) (int .Values.podDisruptionBudget.minAvailable)) -}}
{{- fail "autoscaling.minReplicas must be above podDisruptionBudget.minAvailable, or no pod can ever be evicted" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* TLS material --------------------------------------------------------------------------
Returns (as YAML) caCert, tlsCert, tlsKey. In `generated` mode the CA and certificate are made
once per render and, on upgrades, read back from the existing Secret (`lookup`), so the caBundle
stays valid. The result is memoised in $.Values so every template sees the same material. */}}
{{- define "modelgate.generatedTLS" -}}
{{- if not (hasKey .Values "__modelgateGeneratedTLS") -}}
{{- $secretName := include "modelgate.tlsSecretName" . -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $secretName -}}
{{- $tls := dict -}}
{{- if and $existing $existing.data (hasKey $existing.data "ca.crt") (hasKey $existing.data "tls.crt") (hasKey $existing.data "tls.key") -}}
{{- $_ := set $tls "caCert" (index $existing.data "ca.crt") -}}
{{- $_ := set $tls "tlsCert" (index $existing.data "tls.crt") -}}
{{- $_ := set $tls "tlsKey" (index $existing.data "tls.key") -}}
{{- else -}}
{{- $days := int .Values.tls.generated.validityDays -}}
{{- $ca := genCA (printf "%s-ca" (include "modelgate.fullname" .)) $days -}}
{{- $dns := include "modelgate.serviceDNSNames" . | fromJsonArray -}}
{{- $cert := genSignedCert (index $dns 2) nil $dns $days $ca -}}
{{- $_ := set $tls "caCert" ($ca.Cert | b64enc) -}}
{{- $_ := set $tls "tlsCert" ($cert.Cert | b64enc) -}}
{{- $_ := set $tls "tlsKey" ($cert.Key | b64enc) -}}
{{- end -}}
{{- $_ := set .Values "__modelgateGeneratedTLS" $tls -}}
{{- end -}}
{{- index .Values "__modelgateGeneratedTLS" | toYaml -}}
{{- end -}}

{{/* caBundle (base64 PEM) for the webhook clientConfig; empty in certManager mode (injected). */}}
{{- define "modelgate.caBundle" -}}
{{- if eq .Values.tls.mode "generated" -}}
{{- (include "modelgate.generatedTLS" . | fromYaml).caCert -}}
{{- else if eq .Values.tls.mode "existingSecret" -}}
{{- .Values.tls.existingSecret.caBundle -}}
{{- end -}}
{{- end -}}

{{- define "modelgate.certificateName" -}}
{{- printf "%s-serving" (include "modelgate.fullname" .) -}}
{{- end -}}

{{- define "modelgate.issuerName" -}}
{{- printf "%s-selfsigned" (include "modelgate.fullname" .) -}}
{{- end -}}

{{/* Environment shared by the webhook, the migration Job and the auditor. */}}
{{- define "modelgate.env" -}}
- name: MODELGATE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "modelgate.databaseSecretName" . }}
      key: {{ include "modelgate.databaseUrlKey" . }}
- name: MODELGATE_CLUSTER_NAME
  value: {{ .Values.clusterName | quote }}
- name: MODELGATE_POLICY_DIR
  value: {{ .Values.policies.mountPath | quote }}
- name: MODELGATE_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
{{- with .Values.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Policy bundle files: path -> content, from the chart copy or inline values. */}}
{{- define "modelgate.policyFiles" -}}
{{- $files := dict -}}
{{- if eq .Values.policies.source "bundled" -}}
{{- /* files/policies/modelgate links to the repository's policies/modelgate; like the bundle
loader, serve *.rego modules (not *_test.rego) and data.{json,yaml,yml} files */ -}}
{{- range $path, $_ := .Files.Glob "files/policies/**" -}}
{{- $base := base $path -}}
{{- if or (and (hasSuffix ".rego" $base) (not (hasSuffix "_test.rego" $base))) (has $base (list "data.json" "data.yaml" "data.yml")) -}}
{{- $_ := set $files (trimPrefix "files/policies/" $path) ($.Files.Get $path) -}}
{{- end -}}
{{- end -}}
{{- else if eq .Values.policies.source "inline" -}}
{{- range $path, $content := .Values.policies.inline -}}
{{- $_ := set $files $path $content -}}
{{- end -}}
{{- end -}}
{{- toYaml $files -}}
{{- end -}}

{{/* ConfigMap keys cannot hold "/": folders are encoded as "__" and restored by volume items. */}}
{{- define "modelgate.policyKey" -}}
{{- . | replace "/" "__" -}}
{{- end -}}

{{/* The policy volume (shared by the webhook, the OPA sidecar and the auditor). */}}
{{- define "modelgate.policyVolume" -}}
- name: policies
  configMap:
    name: {{ include "modelgate.policyConfigMapName" . }}
    {{- if eq .Values.policies.source "existingConfigMap" }}
    {{- with .Values.policies.existingConfigMap.items }}
    items:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- else }}
    items:
      {{- range $path, $_ := (include "modelgate.policyFiles" . | fromYaml) }}
      - key: {{ include "modelgate.policyKey" $path }}
        path: {{ $path }}
      {{- end }}
    {{- end }}
{{- end -}}


{{/* Database ------------------------------------------------------------------------------
Where the PostgreSQL URL comes from: database.existingSecret (key database.urlKey), else a
Secret the chart makes from database.url, else the bundled trial PostgreSQL's Secret. */}}
{{- define "modelgate.databaseMode" -}}
{{- if .Values.database.existingSecret -}}existingSecret
{{- else if .Values.database.url -}}url
{{- else if .Values.postgresql.enabled -}}bundled
{{- end -}}
{{- end -}}

{{- define "modelgate.postgresqlName" -}}
{{- printf "%s-postgresql" (include "modelgate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelgate.databaseSecretName" -}}
{{- $mode := include "modelgate.databaseMode" . -}}
{{- if eq $mode "existingSecret" -}}{{ .Values.database.existingSecret }}
{{- else if eq $mode "url" -}}{{ printf "%s-database" (include "modelgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ include "modelgate.postgresqlName" . }}
{{- end -}}
{{- end -}}

{{- define "modelgate.databaseUrlKey" -}}
{{- if eq (include "modelgate.databaseMode" .) "existingSecret" -}}{{ .Values.database.urlKey }}{{- else -}}url{{- end -}}
{{- end -}}

{{/* The dashboard's database credentials: its own (read-only) Secret when given. */}}
{{- define "modelgate.dashboardDatabaseSecretName" -}}
{{- default (include "modelgate.databaseSecretName" .) .Values.dashboard.database.existingSecret -}}
{{- end -}}

{{- define "modelgate.dashboardDatabaseUrlKey" -}}
{{- if .Values.dashboard.database.existingSecret -}}{{ .Values.dashboard.database.urlKey }}{{- else -}}{{ include "modelgate.databaseUrlKey" . }}{{- end -}}
{{- end -}}

{{/* The bundled PostgreSQL's password: generated once, read back from its Secret (`lookup`) on
upgrades so the database keeps accepting it; memoised like the generated TLS material. */}}
{{- define "modelgate.postgresqlPassword" -}}
{{- if not (hasKey .Values "__modelgatePostgresqlPassword") -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "modelgate.postgresqlName" .) -}}
{{- $password := "" -}}
{{- if and $existing $existing.data (hasKey $existing.data "password") -}}
{{- $password = index $existing.data "password" | b64dec -}}
{{- else -}}
{{- $password = randAlphaNum 32 -}}
{{- end -}}
{{- $_ := set .Values "__modelgatePostgresqlPassword" $password -}}
{{- end -}}
{{- index .Values "__modelgatePostgresqlPassword" -}}
{{- end -}}

{{- define "modelgate.postgresqlSelectorLabels" -}}
app.kubernetes.io/name: {{ include "modelgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: postgresql
{{- end -}}

{{- define "modelgate.dashboardName" -}}
{{- printf "%s-dashboard" (include "modelgate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelgate.dashboardSelectorLabels" -}}
app.kubernetes.io/name: {{ include "modelgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: dashboard
{{- end -}}

{{- define "modelgate.validateDatabase" -}}
{{- if and .Values.database.existingSecret .Values.database.url -}}
{{- fail "database.existingSecret and database.url are both set: give the PostgreSQL URL one way (an existing Secret is preferred: the URL holds a password)" -}}
{{- end -}}
{{- if not (include "modelgate.databaseMode" .) -}}
{{- fail "no database: set database.existingSecret (a Secret in the release namespace holding the PostgreSQL URL under database.urlKey, default `url`) or database.url, or leave postgresql.enabled=true for the bundled trial PostgreSQL; the replicated, read-only webhook pods cannot use SQLite" -}}
{{- end -}}
{{- if and .Values.database.url (not (regexMatch "^postgres(ql)?(\\+psycopg)?://" .Values.database.url)) -}}
{{- fail (printf "database.url must be a postgresql:// URL (got the scheme %q)" (regexFind "^[A-Za-z0-9+.-]*:" .Values.database.url)) -}}
{{- end -}}
{{- if and .Values.dashboard.database.existingSecret (not .Values.dashboard.enabled) -}}
{{- fail "dashboard.database.existingSecret is set but dashboard.enabled is false" -}}
{{- end -}}
{{- end -}}

{{- define "modelgate.validateDashboard" -}}
{{- if or (hasKey .Values.dashboard "allowAnonymous") (hasKey .Values.dashboard "auth") -}}
{{- fail "dashboard.allowAnonymous and dashboard.auth are gone: the dashboard signs callers in itself, configured under auth (auth.oidc.*, auth.tokenFileSecret, auth.kubernetesTokens, auth.trustedProxyHeaders); anonymous reads are auth.allowAnonymous" -}}
{{- end -}}
{{- if .Values.dashboard.enabled -}}
{{- if lt (int .Values.dashboard.replicaCount) 1 -}}
{{- fail "dashboard.replicaCount must be at least 1 (or set dashboard.enabled=false)" -}}
{{- end -}}
{{- include "modelgate.validateAuth" . -}}
{{- $exposed := or .Values.dashboard.ingress.enabled (ne .Values.dashboard.service.type "ClusterIP") -}}
{{- if and $exposed (not (include "modelgate.authenticators" .)) (not .Values.auth.allowAnonymous) -}}
{{- fail "exposing the dashboard (dashboard.ingress.enabled, or a dashboard.service.type other than ClusterIP) needs a way to sign callers in, or it refuses everyone: set auth.oidc.issuer (with auth.oidc.clientId for browser sign-in), auth.tokenFileSecret, auth.kubernetesTokens, or auth.trustedProxyHeaders with auth.trustedProxies (an authenticating proxy such as oauth2-proxy in front); auth.allowAnonymous=true instead lets everyone who reaches it read the inventory" -}}
{{- end -}}
{{- if and .Values.dashboard.ingress.enabled (not .Values.dashboard.ingress.host) -}}
{{- fail "dashboard.ingress.enabled needs dashboard.ingress.host" -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled .Values.networkPolicy.restrictEgress (not .Values.dashboard.networkPolicy.egressTo) -}}
{{- $needs := list -}}
{{- if .Values.auth.oidc.issuer -}}{{- $needs = append $needs (printf "the OIDC issuer %s (auth.oidc.issuer, HTTPS)" .Values.auth.oidc.issuer) -}}{{- end -}}
{{- if or .Values.auth.kubernetesTokens .Values.auth.kubernetesAuthorization -}}{{- $needs = append $needs "the Kubernetes API server (auth.kubernetesTokens / auth.kubernetesAuthorization: TokenReview, SubjectAccessReview; its endpoint addresses, usually port 443 or 6443)" -}}{{- end -}}
{{- if $needs -}}
{{- fail (printf "networkPolicy.restrictEgress restricts the dashboard's egress to DNS and networkPolicy.egressTo too, but it must also reach %s: add egress rules for them in dashboard.networkPolicy.egressTo (a NetworkPolicyEgressRule list)" (join " and " $needs)) -}}
{{- end -}}
{{- end -}}
{{- else if .Values.dashboard.ingress.enabled -}}
{{- fail "dashboard.ingress.enabled needs dashboard.enabled" -}}
{{- end -}}
{{- end -}}

{{/* The authenticators auth.* turns on, comma-separated (empty: none, every caller is refused
unless auth.allowAnonymous). */}}
{{- define "modelgate.authenticators" -}}
{{- $on := list -}}
{{- if .Values.auth.tokenFileSecret -}}{{- $on = append $on "token file" -}}{{- end -}}
{{- if .Values.auth.oidc.issuer -}}{{- $on = append $on "OIDC" -}}{{- end -}}
{{- if .Values.auth.kubernetesTokens -}}{{- $on = append $on "Kubernetes tokens" -}}{{- end -}}
{{- if .Values.auth.trustedProxyHeaders -}}{{- $on = append $on "trusted proxy" -}}{{- end -}}
{{- join ", " $on -}}
{{- end -}}

{{/* auth.* combinations the dashboard would refuse at start, or that would fail at random. */}}
{{- define "modelgate.validateAuth" -}}
{{- $auth := .Values.auth -}}
{{- if and $auth.trustedProxyHeaders (not $auth.trustedProxies) -}}
{{- fail "auth.trustedProxyHeaders needs auth.trustedProxies: the comma-separated addresses or CIDRs of the authenticating proxy (e.g. its pods' CIDR), the only callers whose identity headers are believed" -}}
{{- end -}}
{{- if and $auth.oidc.clientId (not $auth.oidc.issuer) -}}
{{- fail "auth.oidc.clientId (browser sign-in) needs auth.oidc.issuer, the IdP the browser signs in at" -}}
{{- end -}}
{{- if and $auth.oidc.issuer (not $auth.oidc.audience) (not $auth.oidc.clientId) -}}
{{- fail "auth.oidc.issuer needs auth.oidc.audience (or auth.oidc.clientId, its default): the audience the IdP's tokens must carry" -}}
{{- end -}}
{{- if and (or $auth.oidc.clientSecretName $auth.oidc.redirectUrl) (not $auth.oidc.clientId) -}}
{{- fail "auth.oidc.clientSecretName and auth.oidc.redirectUrl are only used with auth.oidc.clientId (browser sign-in)" -}}
{{- end -}}
{{- $processes := mul (int .Values.dashboard.replicaCount) (int .Values.dashboard.workers) -}}
{{- if and (or $auth.oidc.clientId $auth.trustedProxyHeaders) (not $auth.sessionSecretName) (gt $processes 1) -}}
{{- fail (printf "browser sessions (auth.oidc.clientId or auth.trustedProxyHeaders) with %d dashboard processes (dashboard.replicaCount=%v x dashboard.workers=%v) need auth.sessionSecretName: without a shared key each process signs session cookies (the sign-in and the sign-off forms' CSRF token) with a random key of its own, which the others refuse. Create a Secret with the key session-secret (e.g. kubectl create secret generic modelgate-session --from-literal=session-secret=$(openssl rand -hex 32)) and name it there, or run one replica with one worker" $processes .Values.dashboard.replicaCount .Values.dashboard.workers) -}}
{{- end -}}
{{- end -}}

{{/* The dashboard's service account (TokenReview / SubjectAccessReview caller). */}}
{{- define "modelgate.dashboardServiceAccountName" -}}
{{- default (printf "%s-dashboard" (include "modelgate.fullname" .)) .Values.auth.serviceAccountName -}}
{{- end -}}

{{/* Environment of the inventory API / dashboard container: identity, roles, sign-off.
Secrets are referenced, never inlined; the token file is mounted by "modelgate.authVolumeMounts". */}}
{{- define "modelgate.authEnv" -}}
{{- with .Values.auth }}
{{- if .tokenFileSecret }}
- name: MODELGATE_TOKEN_FILE
  value: /etc/modelgate/auth/tokens.csv
{{- end }}
{{- if .oidc.issuer }}
- name: MODELGATE_OIDC_ISSUER
  value: {{ .oidc.issuer | quote }}
- name: MODELGATE_OIDC_AUDIENCE
  value: {{ default .oidc.clientId .oidc.audience | quote }}
- name: MODELGATE_OIDC_USERNAME_CLAIM
  value: {{ .oidc.usernameClaim | quote }}
- name: MODELGATE_OIDC_GROUPS_CLAIM
  value: {{ .oidc.groupsClaim | quote }}
{{- end }}
{{- if .oidc.clientId }}
- name: MODELGATE_OIDC_CLIENT_ID
  value: {{ .oidc.clientId | quote }}
{{- if .oidc.redirectUrl }}
- name: MODELGATE_OIDC_REDIRECT_URL
  value: {{ .oidc.redirectUrl | quote }}
{{- end }}
{{- if .oidc.clientSecretName }}
- name: MODELGATE_OIDC_CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .oidc.clientSecretName }}
      key: client-secret
{{- end }}
{{- end }}
{{- if .sessionSecretName }}
- name: MODELGATE_SESSION_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .sessionSecretName }}
      key: session-secret
{{- end }}
- name: MODELGATE_SESSION_COOKIE_SECURE
  value: {{ .sessionCookieSecure | quote }}
- name: MODELGATE_KUBE_AUTH
  value: {{ .kubernetesTokens | quote }}
- name: MODELGATE_KUBE_AUTHZ
  value: {{ .kubernetesAuthorization | quote }}
- name: MODELGATE_ROLE_GROUPS
  value: {{ .roleGroups | quote }}
- name: MODELGATE_TRUSTED_PROXY_HEADERS
  value: {{ .trustedProxyHeaders | quote }}
- name: MODELGATE_TRUSTED_PROXIES
  value: {{ .trustedProxies | quote }}
- name: MODELGATE_ALLOW_ANONYMOUS
  value: {{ .allowAnonymous | quote }}
{{- end }}
{{- end -}}

{{/* The token-file volume and its mount for the dashboard pod (when auth.tokenFileSecret). */}}
{{- define "modelgate.authVolumes" -}}
{{- if .Values.auth.tokenFileSecret }}
- name: auth-tokens
  secret:
    secretName: {{ .Values.auth.tokenFileSecret }}
    # owner root, group fsGroup (podSecurityContext): readable by the non-root user's group only
    defaultMode: 0440
    items:
      - key: tokens.csv
        path: tokens.csv
{{- end }}
{{- end -}}

{{- define "modelgate.authVolumeMounts" -}}
{{- if .Values.auth.tokenFileSecret }}
- name: auth-tokens
  mountPath: /etc/modelgate/auth
  readOnly: true
{{- end }}
{{- end -}}
