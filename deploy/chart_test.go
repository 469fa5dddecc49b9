// Package deploy holds commitlog's deployment artifacts (the Helm chart in helm/commitlog) and
// the tests that check them on a machine without Kubernetes: helm lint, and helm's own
// template engine rendering the chart with several value sets, each manifest then decoded
// strictly (unknown fields refused) into the Kubernetes API type of its kind and checked for
// the properties a safe cluster depends on.
package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir  = "helm/commitlog"
	release   = "commitlog"
	namespace = "prod"
)

// Value sets the chart must lint and render cleanly. Each is checked by checkManifests.
var valueSets = map[string]string{
	"default": ``,
	"five": `
replicas: 5
podDisruptionBudget: {minAvailable: 4}
podAntiAffinity: soft
clusterDomain: k8s.example
persistence: {size: 50Gi, storageClassName: fast}
serviceMonitor: {enabled: true, labels: {release: prom}}
extraArgs: ["--retention-bytes=1073741824"]
`,
	"pinned-expect": `
replicas: 5
bootstrapExpect: 3
`,
	"single": `
replicas: 1
`,
	"cert-manager": `
tls: {source: certManager, certManager: {issuerRef: {name: commitlog-ca}}}
acl: {model: "[request_definition]\nr = sub, obj, act\n"}
`,
	"csi": `
tls: {source: csi, csi: {issuerRef: {name: commitlog-ca, kind: ClusterIssuer}}}
`,
	"insecure": `
insecurePlaintext: true
tls: {enabled: false}
podAntiAffinity: none
`,
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func readValues(t *testing.T, s string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValues([]byte(s))
	if err != nil {
		t.Fatalf("values %q: %v", s, err)
	}
	return v
}

// render runs helm's template engine as `helm template` does (strict: a value the templates
// name that does not exist fails) and returns the rendered files by name.
func render(t *testing.T, ch *chart.Chart, values string) (map[string]string, error) {
	t.Helper()
	vals, err := chartutil.ToRenderValues(ch, readValues(t, values),
		chartutil.ReleaseOptions{Name: release, Namespace: namespace, IsInstall: true, Revision: 1},
		chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	return engine.Engine{Strict: true}.Render(ch, vals)
}

// manifests is what a values set renders to, decoded.
type manifests struct {
	notes           string
	sts             *appsv1.StatefulSet
	services        map[string]*corev1.Service
	pdb             *policyv1.PodDisruptionBudget
	configMaps      map[string]*corev1.ConfigMap
	serviceMonitor  *monitoringv1.ServiceMonitor
	certificate     *certificate
	job             *batchv1.Job // the scale-down hook
	kinds           []string
	commitlogFlags  map[string]string // the serve arguments, --name=value
	commitlogSwitch map[string]bool   // the serve arguments without a value
	// bootstrapExpect is the --bootstrap-expect the pods start with: the argument, or the
	// COMMITLOG_BOOTSTRAP_EXPECT environment variable (its value, or the ConfigMap key it
	// names); "" when neither.
	bootstrapExpect string
}

// certificate is cert-manager's Certificate (cert-manager.io/v1), the fields of its spec this
// chart sets, as https://cert-manager.io/docs/reference/api-docs/#cert-manager.io/v1.Certificate
// names them. (cert-manager's Go module is a large dependency for one struct.)
type certificate struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   map[string]any  `json:"metadata"`
	Spec       certificateSpec `json:"spec"`
	Status     map[string]any  `json:"status,omitempty"`
}

type certificateSpec struct {
	SecretName  string   `json:"secretName"`
	CommonName  string   `json:"commonName"`
	Duration    string   `json:"duration"`
	RenewBefore string   `json:"renewBefore"`
	DNSNames    []string `json:"dnsNames"`
	Usages      []string `json:"usages"`
	PrivateKey  struct {
		Algorithm      string `json:"algorithm"`
		Size           int    `json:"size"`
		RotationPolicy string `json:"rotationPolicy"`
	} `json:"privateKey"`
	IssuerRef struct {
		Name  string `json:"name"`
		Kind  string `json:"kind"`
		Group string `json:"group"`
	} `json:"issuerRef"`
}

// decode splits every rendered file into its documents and decodes each strictly into the type
// of its kind: a field the API does not know (a typo, a wrong indentation) fails the test.
func decode(t *testing.T, files map[string]string) *manifests {
	t.Helper()
	m := &manifests{services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{}}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			m.notes = files[name]
			continue
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(files[name], -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var head struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s document %d: %v\n%s", name, i, err, doc)
			}
			var obj any
			switch head.APIVersion + " " + head.Kind {
			case "apps/v1 StatefulSet":
				m.sts = &appsv1.StatefulSet{}
				obj = m.sts
			case "v1 Service":
				obj = &corev1.Service{}
			case "policy/v1 PodDisruptionBudget":
				m.pdb = &policyv1.PodDisruptionBudget{}
				obj = m.pdb
			case "v1 ConfigMap":
				obj = &corev1.ConfigMap{}
			case "monitoring.coreos.com/v1 ServiceMonitor":
				m.serviceMonitor = &monitoringv1.ServiceMonitor{}
				obj = m.serviceMonitor
			case "batch/v1 Job":
				m.job = &batchv1.Job{}
				obj = m.job
			case "cert-manager.io/v1 Certificate":
				m.certificate = &certificate{}
				obj = m.certificate
			default:
				t.Fatalf("%s: no decoder for %s %s", name, head.APIVersion, head.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s: %s does not decode strictly: %v\n%s", name, head.Kind, err, doc)
			}
			switch o := obj.(type) {
			case *corev1.Service:
				m.services[o.Name] = o
			case *corev1.ConfigMap:
				m.configMaps[o.Name] = o
			}
			m.kinds = append(m.kinds, head.Kind)
		}
	}
	return m
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func renderAndDecode(t *testing.T, ch *chart.Chart, values string) *manifests {
	t.Helper()
	files, err := render(t, ch, values)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	m := decode(t, files)
	if m.sts == nil {
		t.Fatal("no StatefulSet rendered")
	}
	c := container(t, m.sts)
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("args = %q, want serve first", c.Args)
	}
	m.commitlogFlags, m.commitlogSwitch = map[string]string{}, map[string]bool{}
	for _, a := range c.Args[1:] {
		name, value, ok := strings.Cut(a, "=")
		if !strings.HasPrefix(name, "--") {
			t.Fatalf("argument %q is not a --flag", a)
		}
		if ok {
			m.commitlogFlags[name] = value
		} else {
			m.commitlogSwitch[name] = true
		}
	}
	m.bootstrapExpect = m.commitlogFlags["--bootstrap-expect"]
	for _, e := range c.Env {
		if e.Name != "COMMITLOG_BOOTSTRAP_EXPECT" || m.bootstrapExpect != "" {
			continue
		}
		m.bootstrapExpect = e.Value
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			ref := e.ValueFrom.ConfigMapKeyRef
			cm := m.configMaps[ref.Name]
			if cm == nil {
				t.Fatalf("COMMITLOG_BOOTSTRAP_EXPECT from ConfigMap %s, which the chart does not render", ref.Name)
			}
			m.bootstrapExpect = cm.Data[ref.Key]
		}
	}
	return m
}

func container(t *testing.T, sts *appsv1.StatefulSet) corev1.Container {
	t.Helper()
	if n := len(sts.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("%d containers, want 1", n)
	}
	return sts.Spec.Template.Spec.Containers[0]
}

func TestLint(t *testing.T) {
	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			l := lint.All(chartDir, readValues(t, values), namespace, true)
			for _, msg := range l.Messages {
				if msg.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", msg)
				} else {
					t.Logf("helm lint: %s", msg)
				}
			}
		})
	}
}

func TestRender(t *testing.T) {
	ch := loadChart(t)
	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			m := renderAndDecode(t, ch, values)
			checkManifests(t, name, readValues(t, values), m)
		})
	}
}

// checkManifests checks what every values set must give: a cluster that forms without any pod
// bootstrapping alone, reachable at stable names, probed, hardened, and secure unless told.
func checkManifests(t *testing.T, name string, values map[string]any, m *manifests) {
	t.Helper()
	replicas := 3
	if r, ok := values["replicas"]; ok {
		replicas = int(r.(float64))
	}
	fullname := release
	headless := fullname + "-headless"
	domain := "cluster.local"
	if d, ok := values["clusterDomain"]; ok {
		domain = d.(string)
	}
	podDomain := fmt.Sprintf("%s.%s.svc.%s", headless, namespace, domain)
	sts := m.sts
	spec := sts.Spec.Template.Spec
	c := container(t, sts)

	if got := *sts.Spec.Replicas; int(got) != replicas {
		t.Errorf("replicas = %d, want %d", got, replicas)
	}
	if sts.Spec.ServiceName != headless {
		t.Errorf("serviceName = %q, want %q", sts.Spec.ServiceName, headless)
	}
	if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy = %q: with OrderedReady the second pod never starts (none is ready before a quorum)", sts.Spec.PodManagementPolicy)
	}

	// Node names and addresses: the pod name, and its DNS name under the headless Service.
	f := m.commitlogFlags
	if f["--node-name"] != "$(POD_NAME)" {
		t.Errorf("--node-name = %q, want $(POD_NAME)", f["--node-name"])
	}
	if want := "$(POD_NAME)." + podDomain; f["--advertise-host"] != want {
		t.Errorf("--advertise-host = %q, want the pod's DNS name %q", f["--advertise-host"], want)
	}
	podName := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
	})
	if podName < 0 {
		t.Error("no POD_NAME from metadata.name in the environment: $(POD_NAME) would stay literal")
	}
	// Gossip at the pod's IP: its DNS name, resolved at start, may still give the IP of the pod's
	// previous incarnation.
	podIP := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_IP" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP"
	})
	if f["--gossip-advertise-host"] != "$(POD_IP)" || podIP < 0 {
		t.Errorf("--gossip-advertise-host = %q, POD_IP from status.podIP at %d: want the pod's IP", f["--gossip-advertise-host"], podIP)
	}
	if want := podDomain + ":8401"; f["--start-join-addrs"] != want {
		t.Errorf("--start-join-addrs = %q, want the headless Service %q", f["--start-join-addrs"], want)
	}
	if f["--bind-addr"] != "0.0.0.0:8401" || f["--rpc-port"] != "8400" {
		t.Errorf("--bind-addr %q --rpc-port %q", f["--bind-addr"], f["--rpc-port"])
	}

	// No pod bootstraps alone: every pod waits for a majority of the replicas.
	if m.commitlogSwitch["--bootstrap"] || f["--bootstrap"] != "" || f["--bootstrap-wait"] != "" {
		t.Errorf("args %q: --bootstrap makes a pod found a cluster of its own", c.Args)
	}
	expect, err := strconv.Atoi(m.bootstrapExpect)
	if err != nil {
		t.Fatalf("--bootstrap-expect = %q: %v", m.bootstrapExpect, err)
	}
	if expect > replicas || 2*expect <= replicas {
		t.Errorf("--bootstrap-expect=%d with %d replicas: must be a majority, and no more than the replicas", expect, replicas)
	}
	if replicas > 1 && expect < 2 {
		t.Errorf("--bootstrap-expect=%d: a pod of a %d-replica cluster would bootstrap alone", expect, replicas)
	}

	// Services: the headless one lists pods before they are ready (they must find each other
	// to become ready); the client one only ready pods.
	hs := m.services[headless]
	if hs == nil || hs.Spec.ClusterIP != corev1.ClusterIPNone || !hs.Spec.PublishNotReadyAddresses {
		t.Errorf("headless Service %s: %+v; want clusterIP None and publishNotReadyAddresses", headless, hs)
	}
	if cs := m.services[fullname]; cs == nil || cs.Spec.PublishNotReadyAddresses || cs.Spec.Ports[0].Port != 8400 {
		t.Errorf("client Service %s: %+v", fullname, cs)
	}
	for _, s := range m.services {
		for k, v := range s.Spec.Selector {
			if spec := sts.Spec.Template.Labels[k]; spec != v {
				t.Errorf("Service %s selects %s=%s, which the pods do not carry", s.Name, k, v)
			}
		}
	}

	// Probes: /readyz and /healthz on the port --metrics-addr serves.
	metricsPort := 0
	for _, p := range c.Ports {
		if p.Name == "metrics" {
			metricsPort = int(p.ContainerPort)
		}
	}
	if want := "0.0.0.0:" + strconv.Itoa(metricsPort); metricsPort == 0 || f["--metrics-addr"] != want {
		t.Errorf("--metrics-addr = %q, metrics port %d: the probes would reach nothing", f["--metrics-addr"], metricsPort)
	}
	probe := func(what string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: %+v, want an HTTP GET of %s", what, p, path)
			return
		}
		if p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "metrics" {
			t.Errorf("%s probe: GET %s on %s, want %s on the metrics port", what, p.HTTPGet.Path, p.HTTPGet.Port.String(), path)
		}
	}
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("startup", c.StartupProbe, "/healthz")

	// The Go runtime knows the memory limit, less headroom: its garbage collector otherwise lets
	// the heap reach twice what is live, past a limit the live data fits in (an OOM kill).
	checkGoMemLimit(t, c)

	// Graceful stop: the server's shutdown (hand leadership over, leave if removed, end
	// streams: about 25 s at worst) fits in the grace period.
	if g := spec.TerminationGracePeriodSeconds; g == nil || *g < 30 {
		t.Errorf("terminationGracePeriodSeconds = %v, want at least 30", g)
	}

	// PodDisruptionBudget: never below a quorum.
	if m.pdb == nil {
		t.Error("no PodDisruptionBudget")
	} else if min := m.pdb.Spec.MinAvailable; min == nil || min.IntValue() < replicas/2+1 {
		t.Errorf("PDB minAvailable = %v, want at least a quorum (%d)", min, replicas/2+1)
	}

	// Hardening: not root, no privilege escalation, read-only root, no capabilities.
	psc, sc := spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 || psc.FSGroup == nil {
		t.Errorf("pod securityContext %+v: want runAsNonRoot, a non-zero runAsUser and an fsGroup (the data volume)", psc)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container securityContext %+v: want a read-only root, no privilege escalation, every capability dropped", sc)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the pods get a service account token; they never call the Kubernetes API")
	}
	if f["--data-dir"] != "/data/commitlog" || len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Name != "data" {
		t.Errorf("--data-dir %q, claims %d: want a subdirectory of the data volume claim", f["--data-dir"], len(sts.Spec.VolumeClaimTemplates))
	}

	// Anti-affinity, unless turned off.
	anti := values["podAntiAffinity"]
	if anti != "none" {
		if spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil {
			t.Error("no pod anti-affinity")
		} else if anti == nil && len(spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 {
			t.Error("default anti-affinity is not required (hard)")
		}
	}

	// Security on by default.
	secure := name != "insecure"
	if got := f["--server-tls-ca-file"] != ""; got != secure {
		t.Errorf("mutual TLS on the API: %v, want %v", got, secure)
	}
	if secure {
		for _, flag := range []string{"--server-tls-cert-file", "--server-tls-key-file", "--server-tls-ca-file", "--gossip-key-file", "--acl-policy-file"} {
			if f[flag] == "" {
				t.Errorf("%s missing", flag)
			}
			if dir := filepath.Dir(f[flag]); !mounted(c, dir) {
				t.Errorf("%s=%s is in no mounted volume", flag, f[flag])
			}
		}
		if m.commitlogSwitch["--insecure-plaintext-peers"] {
			t.Error("--insecure-plaintext-peers")
		}
		cm := m.configMaps[fullname+"-acl"]
		if cm == nil || !strings.Contains(cm.Data["policy.csv"], "p, root, *, produce") {
			t.Errorf("ACL ConfigMap: %+v", cm)
		}
		if strings.Contains(m.notes, "INSECURE") {
			t.Error("NOTES warns of an insecure install that is not one")
		}
		gossip := volume(t, sts, "gossip")
		if gossip.Secret == nil || gossip.Secret.DefaultMode == nil || *gossip.Secret.DefaultMode != 0o400 {
			t.Errorf("gossip key volume %+v: want a Secret mounted 0400", gossip)
		}
	} else {
		if !strings.Contains(m.notes, "WARNING: INSECURE") {
			t.Errorf("insecure values and NOTES.txt does not warn:\n%s", m.notes)
		}
		if m.configMaps[fullname+"-acl"] != nil {
			t.Error("an ACL ConfigMap without TLS (the server refuses an ACL without mTLS)")
		}
	}
}

// checkGoMemLimit: with a memory limit, GOMEMLIMIT is 90% of it in bytes (Go's guidance: the
// soft limit governs the heap and the runtime's own memory, not all a container holds); without
// one, none.
func checkGoMemLimit(t *testing.T, c corev1.Container) {
	t.Helper()
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })
	limit, ok := c.Resources.Limits[corev1.ResourceMemory]
	switch {
	case !ok && i >= 0:
		t.Errorf("GOMEMLIMIT %+v without a memory limit", c.Env[i])
	case !ok:
	case i < 0:
		t.Error("no GOMEMLIMIT: the garbage collector does not know the container's memory limit")
	case c.Env[i].Value != strconv.FormatInt(limit.Value()*9/10, 10) || c.Env[i].ValueFrom != nil:
		t.Errorf("GOMEMLIMIT %+v with a memory limit of %s, want %d (90%%)", c.Env[i], limit.String(), limit.Value()*9/10)
	}
}

// TestGoMemLimitLeavesHeadroom: GOMEMLIMIT was the container's whole memory limit, which leaves
// the memory Go's soft limit does not govern nowhere to go but over the limit (an OOM kill);
// it is 90% of the limit, for every form of quantity, and absent without a limit. A form it
// cannot read fails the render.
func TestGoMemLimitLeavesHeadroom(t *testing.T) {
	ch := loadChart(t)
	for _, q := range []string{"512Mi", "1Gi", "1500M", "2G", "1.5Gi", "536870912", "64Ki"} {
		m := renderAndDecode(t, ch, fmt.Sprintf("resources:\n  limits:\n    memory: %q\n", q))
		checkGoMemLimit(t, container(t, m.sts))
	}
	m := renderAndDecode(t, ch, "resources:\n  limits: null\n")
	checkGoMemLimit(t, container(t, m.sts))
	if _, err := render(t, ch, "resources:\n  limits:\n    memory: 1e9\n"); err == nil || !strings.Contains(err.Error(), "GOMEMLIMIT") {
		t.Errorf("render with memory 1e9: %v, want a failure naming GOMEMLIMIT", err)
	}
}

func mounted(c corev1.Container, dir string) bool {
	return slices.ContainsFunc(c.VolumeMounts, func(v corev1.VolumeMount) bool { return v.MountPath == dir })
}

func volume(t *testing.T, sts *appsv1.StatefulSet, name string) corev1.Volume {
	t.Helper()
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q", name)
	return corev1.Volume{}
}

// The defaults as the issue asks: 3 servers, PDB of 2, bootstrap-expect 3, TLS with the
// chart's Secrets.
func TestDefaults(t *testing.T) {
	m := renderAndDecode(t, loadChart(t), "")
	if *m.sts.Spec.Replicas != 3 || m.bootstrapExpect != "3" || m.pdb.Spec.MinAvailable.IntValue() != 2 {
		t.Errorf("replicas %d, --bootstrap-expect %s, PDB minAvailable %v", *m.sts.Spec.Replicas, m.bootstrapExpect, m.pdb.Spec.MinAvailable)
	}
	if tls := volume(t, m.sts, "tls"); tls.Secret == nil || tls.Secret.SecretName != "commitlog-tls" {
		t.Errorf("tls volume %+v, want Secret commitlog-tls", tls)
	}
	if g := volume(t, m.sts, "gossip"); g.Secret.SecretName != "commitlog-gossip" {
		t.Errorf("gossip volume %+v", g)
	}
	if m.serviceMonitor != nil || m.certificate != nil {
		t.Error("optional ServiceMonitor or Certificate rendered by default")
	}
	want := []string{"ConfigMap", "ConfigMap", "PodDisruptionBudget", "Service", "Service", "StatefulSet"}
	if got := slices.Sorted(slices.Values(m.kinds)); !slices.Equal(got, want) {
		t.Errorf("kinds %v, want %v", got, want)
	}
}

// TestNotes: what helm prints after an install reads right: "1 server" (not "1 servers"), the
// scaling paragraph apart from the status command, and no certificate in the pods of a plaintext
// install.
func TestNotes(t *testing.T) {
	for _, tc := range []struct {
		values      string
		want, avoid []string
	}{
		{"", []string{"commitlog: 3 servers (", "certificate and address are in its environment", "cluster status\n\nScaling down"}, nil},
		{valueSets["single"], []string{"commitlog: 1 server (commitlog-0 .. commitlog-0)"}, []string{"1 servers"}},
		{valueSets["insecure"], []string{"own address is in its environment", "cluster status\n\nScaling down"}, []string{"certificate"}},
	} {
		m := renderAndDecode(t, loadChart(t), tc.values)
		for _, want := range tc.want {
			if !strings.Contains(m.notes, want) {
				t.Errorf("values %q: NOTES.txt lacks %q:\n%s", tc.values, want, m.notes)
			}
		}
		for _, avoid := range tc.avoid {
			if strings.Contains(m.notes, avoid) {
				t.Errorf("values %q: NOTES.txt says %q:\n%s", tc.values, avoid, m.notes)
			}
		}
	}
}

func TestFiveReplicas(t *testing.T) {
	m := renderAndDecode(t, loadChart(t), valueSets["five"])
	if m.bootstrapExpect != "5" || m.pdb.Spec.MinAvailable.IntValue() != 4 {
		t.Errorf("--bootstrap-expect %s, PDB %v", m.bootstrapExpect, m.pdb.Spec.MinAvailable)
	}
	if want := "$(POD_NAME).commitlog-headless.prod.svc.k8s.example"; m.commitlogFlags["--advertise-host"] != want {
		t.Errorf("--advertise-host %q", m.commitlogFlags["--advertise-host"])
	}
	if m.commitlogFlags["--retention-bytes"] != "1073741824" {
		t.Error("extraArgs not passed")
	}
	pvc := m.sts.Spec.VolumeClaimTemplates[0]
	if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "fast" || pvc.Spec.Resources.Requests.Storage().String() != "50Gi" {
		t.Errorf("claim %+v", pvc.Spec)
	}
	sm := m.serviceMonitor
	if sm == nil || sm.Labels["release"] != "prom" || len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" {
		t.Fatalf("ServiceMonitor %+v", sm)
	}
	// It selects the headless Service, whose metrics port it names.
	hs := m.services["commitlog-headless"]
	for k, v := range sm.Spec.Selector.MatchLabels {
		if hs.Labels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s; the headless Service has %q", k, v, hs.Labels[k])
		}
	}
	if !slices.ContainsFunc(hs.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "metrics" }) {
		t.Error("the headless Service has no metrics port")
	}
	if a := m.sts.Spec.Template.Spec.Affinity.PodAntiAffinity; len(a.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Errorf("soft anti-affinity: %+v", a)
	}
}

func TestCertManager(t *testing.T) {
	m := renderAndDecode(t, loadChart(t), valueSets["cert-manager"])
	c := m.certificate
	if c == nil {
		t.Fatal("no Certificate")
	}
	if c.Spec.SecretName != "commitlog-tls" || c.Spec.IssuerRef.Name != "commitlog-ca" || c.Spec.CommonName != "server" {
		t.Errorf("Certificate spec %+v", c.Spec)
	}
	for i := range 7 {
		if n := fmt.Sprintf("commitlog-%d.node.commitlog", i); !slices.Contains(c.Spec.DNSNames, n) {
			t.Errorf("Certificate does not name node %s (tls.maxReplicas 7)", n)
		}
	}
	for _, n := range []string{"*.commitlog-headless.prod.svc.cluster.local", "commitlog.prod.svc.cluster.local", "commitlog"} {
		if !slices.Contains(c.Spec.DNSNames, n) {
			t.Errorf("Certificate lacks %s: %v", n, c.Spec.DNSNames)
		}
	}
	if !slices.Contains(c.Spec.Usages, "client auth") || !slices.Contains(c.Spec.Usages, "server auth") {
		t.Errorf("usages %v: peers dial each other with it (client) and serve with it", c.Spec.Usages)
	}
	if m.commitlogFlags["--acl-model-file"] == "" || m.configMaps["commitlog-acl"].Data["model.conf"] == "" {
		t.Error("acl.model given but not used")
	}
}

func TestCSIDriver(t *testing.T) {
	m := renderAndDecode(t, loadChart(t), valueSets["csi"])
	v := volume(t, m.sts, "tls")
	if v.CSI == nil || v.CSI.Driver != "csi.cert-manager.io" {
		t.Fatalf("tls volume %+v, want cert-manager's CSI driver", v)
	}
	a := v.CSI.VolumeAttributes
	names := strings.Split(a["csi.cert-manager.io/dns-names"], ",")
	for _, n := range []string{"${POD_NAME}.node.commitlog", "${POD_NAME}.commitlog-headless.prod.svc.cluster.local", "commitlog.prod.svc"} {
		if !slices.Contains(names, n) {
			t.Errorf("dns-names %v lack %s", names, n)
		}
	}
	if a["csi.cert-manager.io/issuer-kind"] != "ClusterIssuer" || !strings.Contains(a["csi.cert-manager.io/key-usages"], "client auth") {
		t.Errorf("attributes %v", a)
	}
	if m.certificate != nil {
		t.Error("a shared Certificate next to per-pod ones")
	}
}

// Values that would give an unsafe or never-forming cluster are refused at render time.
func TestRefusedValues(t *testing.T) {
	ch := loadChart(t)
	for name, tc := range map[string]struct{ values, want string }{
		"plaintext without saying so": {"tls: {enabled: false}", "insecurePlaintext=true"},
		"expect above replicas":       {"bootstrapExpect: 4", "would wait forever"},
		"expect a minority":           {"replicas: 5\nbootstrapExpect: 2", "not a majority"},
		"pdb below quorum":            {"podDisruptionBudget: {minAvailable: 1}", "below a quorum"},
		"cert-manager without issuer": {"tls: {source: certManager}", "issuerRef.name"},
		"more replicas than the cert": {"replicas: 9\ntls: {source: certManager, certManager: {issuerRef: {name: x}}}", "tls.maxReplicas"},
		"csi without issuer":          {"tls: {source: csi}", "issuerRef.name"},
		"unknown tls source":          {"tls: {source: vault}", "tls.source"},
		"no replicas":                 {"replicas: 0\nbootstrapExpect: 0", "at least 1"},
		// The kubelet would make /data/commitlog group-writable at every mount (Always, also
		// Kubernetes' default when unset): the server refuses such a data dir, so every pod
		// started again on its volume exits at once.
		"fsGroup applied at every mount": {"podSecurityContext: {fsGroupChangePolicy: Always}", "fsGroupChangePolicy must be OnRootMismatch"},
		"fsGroupChangePolicy unset":      {"podSecurityContext: {fsGroupChangePolicy: null}", "fsGroupChangePolicy must be OnRootMismatch"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := render(t, ch, tc.values)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// TestMain removes the binary commitlogBinary built, once every test that uses it is done.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// commitlogBinary builds the server's binary (as `make build` and the compose test do), once
// for every test; TestMain removes it.
func commitlogBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "commitlog-deploy-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "commitlog")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, "./cmd/commitlog")
		cmd.Dir = "../server"
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Every flag the chart passes is one `commitlog serve` has: a renamed flag would make every
// pod exit at start, which no rendering check sees.
func TestArgsAreServeFlags(t *testing.T) {
	bin := commitlogBinary(t)
	help, err := exec.Command(bin, "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("serve --help: %v\n%s", err, help)
	}
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(--[a-z0-9-]+)`).FindAllSubmatch(help, -1) {
		known[string(m[1])] = true
	}
	if !known["--bootstrap-expect"] {
		t.Fatalf("could not read the flags from serve --help:\n%s", help)
	}
	ch := loadChart(t)
	for name, values := range valueSets {
		m := renderAndDecode(t, ch, values)
		for flag := range m.commitlogFlags {
			if !known[flag] {
				t.Errorf("%s: the chart passes %s, which commitlog serve does not have", name, flag)
			}
		}
		for flag := range m.commitlogSwitch {
			if !known[flag] {
				t.Errorf("%s: the chart passes %s, which commitlog serve does not have", name, flag)
			}
		}
		// The client flags the pods' environment sets for `kubectl exec ... /commitlog cluster`.
		for _, e := range container(t, m.sts).Env {
			if strings.HasPrefix(e.Name, "COMMITLOG_") && !bytes.Contains(help, []byte(e.Name)) {
				out, _ := exec.Command(bin, "cluster", "status", "--help").CombinedOutput()
				if !bytes.Contains(out, []byte(e.Name)) {
					t.Errorf("%s: the pods set %s, which neither serve nor cluster status reads", name, e.Name)
				}
			}
		}
	}
}

// Changing replicas must not change the pod template: a changed template rolls every pod, one at
// a time. On a scale-down (5 to 3) the removed pods are still voters in Raft until `cluster
// remove` (README.md, "Scaling down"), so each restart of a remaining pod left 2 of 5 voters up:
// no quorum, no writes, on every step of the roll. --bootstrap-expect, which follows replicas,
// was an argument.
func TestScalingDoesNotRollPods(t *testing.T) {
	ch := loadChart(t)
	for _, name := range []string{"default", "cert-manager", "csi", "insecure"} {
		t.Run(name, func(t *testing.T) {
			var templates [][]byte
			for _, replicas := range []int{3, 5} {
				m := renderAndDecode(t, ch, valueSets[name]+fmt.Sprintf("\nreplicas: %d\n", replicas))
				if m.bootstrapExpect != strconv.Itoa(replicas) {
					t.Errorf("replicas %d: --bootstrap-expect %q, want %d", replicas, m.bootstrapExpect, replicas)
				}
				b, err := json.Marshal(m.sts.Spec.Template)
				if err != nil {
					t.Fatal(err)
				}
				templates = append(templates, b)
			}
			if !bytes.Equal(templates[0], templates[1]) {
				t.Errorf("the pod template differs between 3 and 5 replicas: scaling rolls every pod\n3: %s\n5: %s", templates[0], templates[1])
			}
		})
	}
}

// podDisruptionBudget.minAvailable may be a percentage, which Kubernetes rounds up: 67% (and
// 34%) of 3 replicas is 2 or more, a quorum. The chart read "67%" as the number 0 and refused
// it as "below a quorum".
func TestPDBPercentage(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct {
		replicas int
		min      string
		refused  bool
	}{
		{3, "67%", false}, // 2.01 -> 3
		{3, "34%", false}, // 1.02 -> 2
		{3, "33%", true},  // 0.99 -> 1
		{5, "59%", false}, // 2.95 -> 3
		{5, "40%", true},  // 2
	} {
		t.Run(fmt.Sprintf("%d replicas %s", tc.replicas, tc.min), func(t *testing.T) {
			values := fmt.Sprintf("replicas: %d\npodDisruptionBudget: {minAvailable: %q}", tc.replicas, tc.min)
			files, err := render(t, ch, values)
			if tc.refused {
				if err == nil || !strings.Contains(err.Error(), "below a quorum") {
					t.Errorf("render = %v, want it refused (below a quorum)", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			m := decode(t, files)
			if got := m.pdb.Spec.MinAvailable.String(); got != tc.min {
				t.Errorf("PDB minAvailable %s, want %s", got, tc.min)
			}
		})
	}
}
