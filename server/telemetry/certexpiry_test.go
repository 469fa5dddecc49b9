package telemetry

import (
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
)

// TestCertExpiryMetricSameSubject: a CA bundle during a CA rotation holds the old CA and the
// new one, both "commitlog CA" (`tls ca create`'s default name). Their series share role, kind
// and subject; the gauge says when the first of them expires, whatever their order in the
// bundle: it reported the last one's, so the old CA's coming expiry (its certificates then
// fail every handshake) never showed, nor fired an alert on the gauge.
func TestCertExpiryMetricSameSubject(t *testing.T) {
	tel := newTelemetry(t, Config{})
	now := time.Now()
	certs := []CertExpiry{
		{Role: "server", Kind: "ca", Subject: "commitlog CA", NotAfter: now.Add(2 * 24 * time.Hour)},       // the old CA
		{Role: "server", Kind: "ca", Subject: "commitlog CA", NotAfter: now.Add(5 * 365 * 24 * time.Hour)}, // the new one
		{Role: "server", Kind: "cert", Subject: "server", NotAfter: now.Add(300 * 24 * time.Hour)},
	}
	if err := tel.Observe(Sources{Certificates: func() []CertExpiry { return certs }}); err != nil {
		t.Fatalf("Observe: %v", err)
	}
	m, err := telemetrytest.Find(telemetrytest.Scrape(t, tel.MetricsAddr()), "commitlog_tls_cert_expiry_seconds",
		map[string]string{"role": "server", "kind": "ca", "subject": "commitlog CA"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.GetGauge().GetValue(), (2 * 24 * time.Hour).Seconds(); got > want || got < want-time.Hour.Seconds() {
		t.Errorf("commitlog CA: %v s until expiry, want the old CA's, about %v s", got, want)
	}
}
