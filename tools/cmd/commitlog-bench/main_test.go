package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/tools/loadgen"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, cfg loadgen.Config, o options)
		err   string
	}{
		{"defaults", nil, func(t *testing.T, cfg loadgen.Config, o options) {
			if len(cfg.Addrs) != 1 || cfg.Addrs[0] != "127.0.0.1:8400" || cfg.Transport != "connect" ||
				cfg.Mode != loadgen.ModeUnary || cfg.Producers != 1 || cfg.Duration != loadgen.DefaultDuration ||
				cfg.Warmup != time.Second || cfg.TLS != nil || o.json {
				t.Fatalf("cfg %+v", cfg)
			}
		}, ""},
		{"addresses repeated and comma-separated", []string{"-addr", "a:1,b:2", "--addr", "c:3"}, func(t *testing.T, cfg loadgen.Config, _ options) {
			if strings.Join(cfg.Addrs, " ") != "a:1 b:2 c:3" {
				t.Fatalf("addrs %q", cfg.Addrs)
			}
		}, ""},
		{"batch settings", []string{"-mode", "batch", "-producers", "8", "-window", "64", "-batch-records", "500",
			"-linger", "2ms", "-max-in-flight", "4", "-record-size", "1024", "-transport", "grpc", "-json"},
			func(t *testing.T, cfg loadgen.Config, o options) {
				if cfg.Mode != loadgen.ModeBatch || cfg.Producers != 8 || cfg.Window != 64 || cfg.BatchRecords != 500 ||
					cfg.Linger != 2*time.Millisecond || cfg.MaxInFlight != 4 || cfg.RecordSize != 1024 ||
					cfg.Transport != "grpc" || !o.json {
					t.Fatalf("cfg %+v", cfg)
				}
			}, ""},
		{"a count alone drops the default duration", []string{"-records", "1000"}, func(t *testing.T, cfg loadgen.Config, _ options) {
			if cfg.Records != 1000 || cfg.Duration != 0 {
				t.Fatalf("records %d duration %v", cfg.Records, cfg.Duration)
			}
		}, ""},
		{"a count with an explicit duration keeps both", []string{"-records", "1000", "-duration", "5s"}, func(t *testing.T, cfg loadgen.Config, _ options) {
			if cfg.Records != 1000 || cfg.Duration != 5*time.Second {
				t.Fatalf("records %d duration %v", cfg.Records, cfg.Duration)
			}
		}, ""},
		{"read policy adds a client option", []string{"-read-from", "followers", "-request-timeout", "3s"}, func(t *testing.T, cfg loadgen.Config, _ options) {
			if len(cfg.ClientOptions) != 2 {
				t.Fatalf("client options %d, want 2", len(cfg.ClientOptions))
			}
		}, ""},
		{"bad read policy", []string{"-read-from", "nearest"}, nil, "-read-from"},
		{"zero max errors", []string{"-max-errors", "0"}, nil, "-max-errors"},
		{"stray argument", []string{"produce"}, nil, "unexpected arguments"},
		{"unknown flag", []string{"-bogus"}, nil, "bogus"},
		{"half a key pair", []string{"-tls-cert-file", "x.pem"}, nil, "without its key file"},
		{"missing CA file", []string{"-tls-ca-file", "/nonexistent/ca.pem"}, nil, "CA file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, o, err := parseFlags(tt.args, io.Discard)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg, o)
		})
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	if _, _, err := parseFlags([]string{"-help"}, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	if code := run(context.Background(), []string{"-h"}, io.Discard, io.Discard); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"-mode", "-stream-consumers", "-json", "-tls-ca-file"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("usage lacks %s", want)
		}
	}
}

// TestRunJSON runs the whole command against a fake server and decodes its JSON summary.
func TestRunJSON(t *testing.T) {
	for _, tr := range []string{"connect", "grpc"} {
		t.Run(tr, func(t *testing.T) {
			log := clienttest.New()
			srv, err := log.Serve(clienttest.ServeOptions{Transport: tr})
			if err != nil {
				t.Fatal(err)
			}
			addr, stop := srv.Addr(), func() { _ = srv.Close() }
			defer stop()
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"-addr", addr, "-transport", tr, "-mode", "stream",
				"-records", "200", "-warmup", "0", "-consumers", "1", "-stream-consumers", "1", "-json", "-progress", "-1s"},
				&stdout, &stderr)
			if code != exitOK {
				t.Fatalf("exit %d, stderr: %s", code, stderr.String())
			}
			var res loadgen.Result
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Fatalf("decode %q: %v", stdout.String(), err)
			}
			if res.Produce == nil || res.Produce.Records != 200 || res.Consume.Records != 200 || res.Stream.Records != 200 ||
				res.Produce.Latency.Count != 200 || log.Len() != 200 {
				t.Fatalf("result %s", stdout.String())
			}
		})
	}
}

func TestRunTextAndExitCodes(t *testing.T) {
	log := clienttest.New()
	srv, err := log.Serve(clienttest.ServeOptions{Transport: "connect"})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := srv.Addr(), func() { _ = srv.Close() }
	defer stop()

	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"-addr", addr, "-records", "20", "-warmup", "0"}, &stdout, io.Discard); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stdout.String(), "produce") || !strings.Contains(stdout.String(), "records/s") {
		t.Fatalf("summary: %s", stdout.String())
	}

	// A corrupt record read back fails the run.
	log.CorruptRead = func(off uint64) bool { return off == 3 }
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"-addr", addr, "-producers", "0", "-consumers", "1", "-warmup", "0"}, io.Discard, &stderr)
	if code != exitCorrupt || !strings.Contains(stderr.String(), "1 corrupt") {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}

	if code := run(context.Background(), []string{"-mode", "bulk"}, io.Discard, io.Discard); code != exitUsage {
		t.Fatalf("bad mode: exit %d", code)
	}
}

func TestRunWithTLSFiles(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"-tls-ca-file", ca}, io.Discard, &stderr); code != exitUsage ||
		!strings.Contains(stderr.String(), "no certificate") {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
}

// TestRunCPUProfile: -cpuprofile writes a pprof profile of the run; a path that cannot be
// created fails the run before any load, with the flag named.
func TestRunCPUProfile(t *testing.T) {
	log := clienttest.New()
	srv, err := log.Serve(clienttest.ServeOptions{Transport: "connect"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Close() }()
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"-addr", srv.Addr(), "-records", "20", "-warmup", "0", "-cpuprofile", path},
		io.Discard, &stderr); code != exitOK {
		t.Fatalf("exit %d, stderr: %s", code, stderr.String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b { // pprof profiles are gzipped protobufs
		t.Fatalf("profile of %d bytes is not a gzipped pprof profile", len(b))
	}

	stderr.Reset()
	code := run(context.Background(), []string{"-addr", srv.Addr(), "-records", "20", "-warmup", "0",
		"-cpuprofile", filepath.Join(t.TempDir(), "missing", "cpu.pprof")}, io.Discard, &stderr)
	if code != exitFailed || !strings.Contains(stderr.String(), "-cpuprofile") {
		t.Fatalf("exit %d, stderr: %s", code, stderr.String())
	}
	if log.Len() != 20 {
		t.Fatalf("the failed run produced: log has %d records, want the first run's 20", log.Len())
	}
}
