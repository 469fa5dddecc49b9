// Package telemetrytest helps tests read what a telemetry endpoint serves: Scrape parses
// /metrics into metric families, and Find picks one series out of them.
package telemetrytest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Get fetches http://addr+path and returns the status code and body; it fails t on a
// transport error. Requests time out after 10 s.
func Get(t testing.TB, addr, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return res.StatusCode, string(body)
}

// Scrape fetches addr's /metrics in the Prometheus text format and parses it.
func Scrape(t testing.TB, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := Get(t, addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d: %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// Find returns the series of family name whose labels include every pair of labels, or an
// error naming what there is instead.
func Find(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (*dto.Metric, error) {
	fam, ok := fams[name]
	if !ok {
		names := make([]string, 0, len(fams))
		for n := range fams {
			names = append(names, n)
		}
		return nil, fmt.Errorf("no metric family %q among %v", name, names)
	}
next:
	for _, m := range fam.GetMetric() {
		for k, v := range labels {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m, nil
	}
	return nil, fmt.Errorf("no series of %s with labels %v among %v", name, labels, fam.GetMetric())
}
