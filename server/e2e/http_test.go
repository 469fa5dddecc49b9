package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"testing"
	"time"
)

// jsonRecord is log.v1.Record in protojson: bytes as base64, 64-bit integers as strings.
type jsonRecord struct {
	Value  []byte `json:"value"`
	Offset uint64 `json:"offset,string"`
}

type jsonProduceRequest struct {
	Record jsonRecord `json:"record"`
}

type jsonProduceResponse struct {
	Offset uint64 `json:"offset,string"`
}

type jsonConsumeRequest struct {
	Offset uint64 `json:"offset,string"`
}

type jsonConsumeResponse struct {
	Record jsonRecord `json:"record"`
}

// connectJSON posts req as Connect JSON over HTTP/1.1 to http://addr/log.v1.Log/<method> — what
// curl does — and decodes the answer into resp. The request's HTTP client is hc.
func connectJSON(t testing.TB, hc *http.Client, addr, method string, req, resp any) {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/log.v1.Log/"+method, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := hc.Do(hreq)
	if err != nil {
		t.Fatalf("POST %s %s: %v", method, body, err)
	}
	defer hresp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
	if err != nil {
		t.Fatalf("POST %s: read answer: %v", method, err)
	}
	if hresp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s %s: HTTP %d (proto %s): %s", method, body, hresp.StatusCode, hresp.Proto, b)
	}
	if hresp.ProtoMajor != 1 {
		t.Fatalf("POST %s: answered over %s, want HTTP/1.1", method, hresp.Proto)
	}
	if err := json.Unmarshal(b, resp); err != nil {
		t.Fatalf("POST %s: answer %s: %v", method, b, err)
	}
}

// newHTTPClient returns an HTTP/1.1 client whose idle connections are closed when the test
// ends (so no keep-alive goroutine outlives it).
func newHTTPClient(t testing.TB) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// curlJSON runs curl as a user would (Connect JSON) and decodes its output into resp. Without
// curl installed it skips the test (fails it under COMMITLOG_STRICT).
func curlJSON(t testing.TB, addr, method, reqJSON string, resp any) {
	t.Helper()
	curl, err := exec.LookPath("curl")
	if err != nil {
		skipOrFail(t, "curl is not installed (net/http covered the same requests)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, curl, "-sS", "--fail-with-body", "--max-time", "10",
		"-H", "Content-Type: application/json", "-d", reqJSON,
		fmt.Sprintf("http://%s/log.v1.Log/%s", addr, method))
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("curl %s %s: %v\n%s%s", method, reqJSON, err, out, stderr)
	}
	if err := json.Unmarshal(out, resp); err != nil {
		t.Fatalf("curl %s: answer %s: %v", method, out, err)
	}
}
