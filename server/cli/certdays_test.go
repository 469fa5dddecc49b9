package cli

import (
	"strings"
	"testing"
)

// TestCertDaysOutlivingCANamesFlag: a certificate that would outlive its CA (the default --days
// 365 against a CA with 30 days left) was refused with certgen's dates alone, naming neither
// --days nor a value that works.
func TestCertDaysOutlivingCANamesFlag(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := run(t, t.Context(), "tls", "ca", "create", "--dir", dir, "--days", "30"); code != 0 {
		t.Fatalf("tls ca create: exit %d: %s", code, errOut)
	}
	code, out, errOut := run(t, t.Context(), "tls", "cert", "create", "--client", "--cn", "x", "--dir", dir)
	if code != 1 || out != "" || !strings.Contains(errOut, "--days 365: ") || !strings.Contains(errOut, "give --days 29 or fewer") {
		t.Errorf("tls cert create against a 30-day CA: exit %d, stdout %q, stderr %q; want exit 1 naming --days 365 and --days 29", code, out, errOut)
	}
	if code, _, errOut := run(t, t.Context(), "tls", "cert", "create", "--client", "--cn", "x", "--dir", dir, "--days", "29"); code != 0 {
		t.Errorf("tls cert create --days 29 against a 30-day CA: exit %d: %s", code, errOut)
	}
}
