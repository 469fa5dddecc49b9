package deploy

import (
	"maps"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// scaleDownJob renders the chart as `helm upgrade` from current replicas with values and
// returns what it renders, decoded, and the scale-down Job (nil when none).
func scaleDownJob(t *testing.T, current int64, values string) (*manifests, *batchv1.Job) {
	t.Helper()
	files, err := upgradeFiles(t, loadChart(t), current, values)
	if err != nil {
		t.Fatalf("upgrade from %d with %q: %v", current, values, err)
	}
	m := decode(t, files)
	return m, m.job
}

// jobContainer is the Job's one container.
func jobContainer(t *testing.T, job *batchv1.Job) corev1.Container {
	t.Helper()
	if n := len(job.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("scale-down Job: %d containers, want 1", n)
	}
	return job.Spec.Template.Spec.Containers[0]
}

// removedIDs are the server ids the Job's `cluster remove` names, in order.
func removedIDs(t *testing.T, c corev1.Container) []string {
	t.Helper()
	if len(c.Args) < 2 || c.Args[0] != "cluster" || c.Args[1] != "remove" {
		t.Fatalf("scale-down Job args %q, want cluster remove", c.Args)
	}
	var ids []string
	for _, a := range c.Args[2:] {
		if !strings.HasPrefix(a, "--") {
			ids = append(ids, a)
		}
	}
	return ids
}

// A `helm upgrade` that lowers replicas runs a pre-upgrade hook Job that removes exactly the pods
// the StatefulSet will delete from Raft, highest ordinal first (as the StatefulSet deletes
// them); nothing else renders it. Before, a scale-down left the removed pods as failed voters
// until an operator ran `cluster remove` for each.
func TestScaleDownJobRemovesDroppedPods(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		current  int64
		values   string
		want     []string // nil: no Job
	}{
		{"5 to 3", 5, "replicas: 3", []string{"commitlog-4", "commitlog-3"}},
		{"3 to 1", 3, "replicas: 1", []string{"commitlog-2", "commitlog-1"}},
		{"7 to 6", 7, "replicas: 6", []string{"commitlog-6"}},
		{"a new install", 0, "replicas: 3", nil},
		{"scaling up", 3, "replicas: 5", nil},
		{"the same size", 3, "replicas: 3", nil},
		{"5 to 3, the hook turned off", 5, "replicas: 3\nscaleDown: {removeFromRaft: false}", nil},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			_, job := scaleDownJob(t, tc.current, tc.values)
			if tc.want == nil {
				if job != nil {
					t.Fatalf("a scale-down Job rendered: %+v", job.Spec.Template.Spec.Containers)
				}
				return
			}
			if job == nil {
				t.Fatal("no scale-down Job")
			}
			if got := removedIDs(t, jobContainer(t, job)); !slices.Equal(got, tc.want) {
				t.Errorf("the Job removes %q, want %q", got, tc.want)
			}
		})
	}
	// helm template (and helm install) cannot look the StatefulSet up: no Job.
	if m := renderAndDecode(t, loadChart(t), "replicas: 1"); m.job != nil {
		t.Error("helm template renders a scale-down Job")
	}
}

// The Job is a pre-upgrade hook (it runs, and its failure fails the upgrade, before the
// StatefulSet shrinks), bounded in time and attempts, retried safely (--missing-ok), as hardened
// as the servers, with the servers' image, and talks to the client Service.
func TestScaleDownJobSpec(t *testing.T) {
	m, job := scaleDownJob(t, 5, "replicas: 3")
	if job == nil {
		t.Fatal("no scale-down Job")
	}
	if h := job.Annotations["helm.sh/hook"]; h != "pre-upgrade" {
		t.Errorf("helm.sh/hook = %q, want pre-upgrade", h)
	}
	if p := job.Annotations["helm.sh/hook-delete-policy"]; !strings.Contains(p, "before-hook-creation") {
		t.Errorf("hook-delete-policy %q: a failed Job would block the next upgrade's", p)
	}
	s := job.Spec
	if s.BackoffLimit == nil || *s.BackoffLimit < 1 || s.ActiveDeadlineSeconds == nil || *s.ActiveDeadlineSeconds <= 0 {
		t.Errorf("backoffLimit %v, activeDeadlineSeconds %v: want retries and a deadline", s.BackoffLimit, s.ActiveDeadlineSeconds)
	}
	pod := s.Template.Spec
	c := jobContainer(t, job)
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q, want Never (the Job's backoffLimit retries)", pod.RestartPolicy)
	}
	if !slices.Contains(c.Args, "--missing-ok") || !slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--timeout=") }) {
		t.Errorf("args %q: want --missing-ok (a retry after a partial run) and a --timeout", c.Args)
	}
	if sc := container(t, m.sts); c.Image != sc.Image {
		t.Errorf("the Job runs %s, the servers %s", c.Image, sc.Image)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "COMMITLOG_ADDR" && e.Value == "commitlog.prod.svc.cluster.local:8400"
	}) {
		t.Errorf("env %+v: want COMMITLOG_ADDR the client Service", c.Env)
	}
	// Hardened as the servers: non-root, read-only root, no privilege escalation, no
	// capabilities, no service account token.
	if !reflect.DeepEqual(pod.SecurityContext, m.sts.Spec.Template.Spec.SecurityContext) ||
		!reflect.DeepEqual(c.SecurityContext, container(t, m.sts).SecurityContext) {
		t.Errorf("security contexts %+v / %+v differ from the servers'", pod.SecurityContext, c.SecurityContext)
	}
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext %+v: want non-root", psc)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil ||
		*sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container securityContext %+v: want a read-only root, no privilege escalation, no capabilities", sc)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the Job's pod gets a service account token; it never calls the Kubernetes API")
	}
	// Its pod is not a server: no Service sends it clients, the PodDisruptionBudget does not
	// count it, the servers' anti-affinity does not see it.
	podLabels := labels.Set(s.Template.Labels)
	for _, svc := range m.services {
		if labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
			t.Errorf("Service %s selects the Job's pod (labels %v)", svc.Name, podLabels)
		}
	}
	if sel := labels.SelectorFromSet(m.pdb.Spec.Selector.MatchLabels); sel.Matches(podLabels) {
		t.Errorf("the PodDisruptionBudget counts the Job's pod (labels %v)", podLabels)
	}
	if maps.Equal(s.Template.Labels, m.sts.Spec.Selector.MatchLabels) {
		t.Error("the Job's pod carries the servers' selector labels")
	}
	// NOTES.txt says where its logs are, and no longer asks for `cluster remove` by hand.
	if !strings.Contains(m.notes, "logs job/commitlog-scale-down") || strings.Contains(m.notes, "cluster remove") {
		t.Errorf("NOTES.txt on scale-down:\n%s", m.notes)
	}
	if manual, _ := scaleDownJob(t, 5, "replicas: 4\nscaleDown: {removeFromRaft: false}"); !strings.Contains(manual.notes, "cluster remove commitlog-<ordinal>") {
		t.Errorf("NOTES.txt without the hook does not say to run cluster remove:\n%s", manual.notes)
	}
}

// The Job's identity: the removal needs the admin action. By default the servers' certificate
// (CN server, which the default policy grants admin), or a client Secret the operator names;
// with the csi-driver a client-only certificate of its own (no node name: it cannot speak Raft);
// in plaintext none.
func TestScaleDownJobCredentials(t *testing.T) {
	for _, tc := range []struct {
		scenario, values string
		secret           string // the Secret mounted; "" for csi or none
		csi, tls         bool
	}{
		{"default", "", "commitlog-tls", false, true},
		{"a client Secret", "scaleDown: {tlsSecretName: commitlog-ops}", "commitlog-ops", false, true},
		{"cert-manager", valueSets["cert-manager"], "commitlog-tls", false, true},
		{"csi", valueSets["csi"], "", true, true},
		{"csi with a client Secret", valueSets["csi"] + "\nscaleDown: {tlsSecretName: commitlog-ops}", "commitlog-ops", false, true},
		{"insecure", valueSets["insecure"], "", false, false},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			_, job := scaleDownJob(t, 5, tc.values+"\nreplicas: 3\n")
			if job == nil {
				t.Fatal("no scale-down Job")
			}
			c := jobContainer(t, job)
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			if !tc.tls {
				if env["COMMITLOG_TLS_CA_FILE"] != "" || len(job.Spec.Template.Spec.Volumes) != 0 {
					t.Errorf("plaintext: env %v, volumes %+v", env, job.Spec.Template.Spec.Volumes)
				}
				return
			}
			for _, k := range []string{"COMMITLOG_TLS_CA_FILE", "COMMITLOG_TLS_CERT_FILE", "COMMITLOG_TLS_KEY_FILE"} {
				if env[k] == "" || !mounted(c, filepath.Dir(env[k])) {
					t.Errorf("%s=%q is in no mounted volume", k, env[k])
				}
			}
			vols := job.Spec.Template.Spec.Volumes
			if len(vols) != 1 || vols[0].Name != "tls" {
				t.Fatalf("volumes %+v, want the tls one only", vols)
			}
			v := vols[0]
			if tc.csi {
				if v.CSI == nil || v.CSI.Driver != "csi.cert-manager.io" {
					t.Fatalf("tls volume %+v, want the csi-driver's", v)
				}
				a := v.CSI.VolumeAttributes
				if a["csi.cert-manager.io/common-name"] != "server" || strings.Contains(a["csi.cert-manager.io/key-usages"], "server auth") ||
					!strings.Contains(a["csi.cert-manager.io/key-usages"], "client auth") || strings.Contains(a["csi.cert-manager.io/dns-names"], "node.commitlog") {
					t.Errorf("csi attributes %v: want a client-only certificate of CN server naming no node", a)
				}
				return
			}
			if v.Secret == nil || v.Secret.SecretName != tc.secret || v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o400 {
				t.Errorf("tls volume %+v, want Secret %s mounted 0400", v, tc.secret)
			}
		})
	}
}

// The default ACL policy grants the Job's identity (the servers' common name) the admin action,
// which RemoveServer needs (server/authorize.go).
func TestScaleDownJobIdentityIsAdmin(t *testing.T) {
	m := renderAndDecode(t, loadChart(t), "")
	policy := m.configMaps["commitlog-acl"].Data["policy.csv"]
	if !regexp.MustCompile(`(?m)^p, server, \*, admin$`).MatchString(policy) {
		t.Errorf("the default policy does not grant the servers' certificate admin; the scale-down Job would be denied:\n%s", policy)
	}
}

// Every flag and environment variable the Job passes is one `commitlog cluster remove` reads:
// a renamed flag would fail every scale-down, which no rendering check sees.
func TestScaleDownJobArgsAreRemoveFlags(t *testing.T) {
	bin := commitlogBinary(t)
	help, err := exec.Command(bin, "cluster", "remove", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("cluster remove --help: %v\n%s", err, help)
	}
	if !strings.Contains(string(help), "ID...") {
		t.Errorf("cluster remove --help does not take several ids:\n%s", help)
	}
	_, job := scaleDownJob(t, 5, "replicas: 3")
	c := jobContainer(t, job)
	for _, a := range c.Args[2:] {
		if name, _, _ := strings.Cut(a, "="); strings.HasPrefix(name, "--") && !strings.Contains(string(help), name+" ") {
			t.Errorf("the Job passes %s, which cluster remove does not have:\n%s", name, help)
		}
	}
	for _, e := range c.Env {
		if !strings.Contains(string(help), "$"+e.Name) {
			t.Errorf("the Job sets %s, which cluster remove does not read", e.Name)
		}
	}
}
