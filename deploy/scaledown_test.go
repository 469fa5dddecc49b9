package deploy

import (
	"fmt"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
)

// clusterWith is a helm engine.ClientProvider for a cluster holding the release's StatefulSet
// with the given replicas (none when replicas is 0), as `helm upgrade` sees it through lookup.
type clusterWith struct{ replicas int64 }

func (c clusterWith) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}
	if apiVersion != "apps/v1" || kind != "StatefulSet" {
		return nil, false, fmt.Errorf("lookup of %s %s: not in this fake cluster", apiVersion, kind)
	}
	var objs []runtime.Object
	if c.replicas > 0 {
		objs = append(objs, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "StatefulSet",
			"metadata": map[string]any{"name": release, "namespace": namespace},
			"spec":     map[string]any{"replicas": c.replicas},
		}})
	}
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{gvr: "StatefulSetList"}, objs...)
	return client.Resource(gvr), true, nil
}

// upgrade renders the chart as `helm upgrade` does against a cluster whose StatefulSet has
// current replicas.
func upgrade(t *testing.T, ch *chart.Chart, current int64, values string) error {
	t.Helper()
	_, err := upgradeFiles(t, ch, current, values)
	return err
}

// upgradeFiles is upgrade returning the rendered files by name.
func upgradeFiles(t *testing.T, ch *chart.Chart, current int64, values string) (map[string]string, error) {
	t.Helper()
	vals, err := chartutil.ToRenderValues(ch, readValues(t, values),
		chartutil.ReleaseOptions{Name: release, Namespace: namespace, IsUpgrade: true, Revision: 2},
		chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	return engine.RenderWithClientProvider(ch, vals, clusterWith{current})
}

// The StatefulSet (Parallel) deletes every pod a scale-down removes at once. Without the
// scale-down hook (scaleDown.removeFromRaft=false) each is still a Raft voter until `cluster
// remove`: 3 to 1 stopped 2 of 3 voters, 5 to 2 stopped 3 of 5, and the cluster had no quorum
// left, not even to run `cluster remove`; the chart refuses it on upgrade, unless told the pods
// are out of Raft already. With the hook (the default), which removes them from Raft one at a
// time before the StatefulSet shrinks, any scale-down keeps the quorum, and is accepted.
func TestScaleDownBeyondMinorityRefused(t *testing.T) {
	ch := loadChart(t)
	const manual = "\nscaleDown: {removeFromRaft: false}"
	for _, tc := range []struct {
		current  int64
		values   string
		refused  bool
		scenario string
	}{
		{0, "replicas: 3" + manual, false, "a new install"},
		{3, "replicas: 5" + manual, false, "scaling up"},
		{3, "replicas: 3" + manual, false, "an upgrade at the same size"},
		{5, "replicas: 3" + manual, false, "5 to 3: 2 of 5 voters stop, 3 keep the quorum"},
		{3, "replicas: 2\npodDisruptionBudget: {enabled: false}" + manual, false, "3 to 2"},
		{5, "replicas: 2\npodDisruptionBudget: {enabled: false}" + manual, true, "5 to 2: 3 of 5 voters stop"},
		{3, "replicas: 1" + manual, true, "3 to 1: 2 of 3 voters stop"},
		{2, "replicas: 1" + manual, true, "2 to 1: 1 of 2 voters stops"},
		{3, "replicas: 1\nallowScaleDownBeyondMinority: true" + manual, false, "3 to 1 once removed from Raft"},
		{3, "replicas: 1", false, "3 to 1, the hook removing them from Raft first"},
		{5, "replicas: 2\npodDisruptionBudget: {enabled: false}", false, "5 to 2, the hook removing them from Raft first"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			err := upgrade(t, ch, tc.current, tc.values)
			switch {
			case tc.refused && (err == nil || !strings.Contains(err.Error(), "quorum")):
				t.Errorf("upgrade from %d replicas with %q: %v, want it refused (quorum)", tc.current, tc.values, err)
			case !tc.refused && err != nil:
				t.Errorf("upgrade from %d replicas with %q: %v", tc.current, tc.values, err)
			}
		})
	}
}
