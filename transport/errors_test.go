package transport_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

func TestCodeOf(t *testing.T) {
	leader := transport.NotLeaderError(transport.NotLeader{LeaderID: "a", LeaderAddr: "b"}, "not leader")
	tests := []struct {
		name string
		err  error
		want transport.Code
	}{
		{"nil", nil, transport.OK},
		{"plain", io.EOF, transport.Unknown},
		{"canceled", context.Canceled, transport.Canceled},
		{"deadline", fmt.Errorf("op: %w", context.DeadlineExceeded), transport.DeadlineExceeded},
		{"error", transport.Errorf(transport.OutOfRange, "offset %d", 7), transport.OutOfRange},
		{"wrapped error", fmt.Errorf("consume: %w", transport.Errorf(transport.DataLoss, "crc")), transport.DataLoss},
		{"not leader", leader, transport.FailedPrecondition},
		{"error wrapping a context error", transport.NewError(transport.Unavailable, context.Canceled), transport.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := transport.CodeOf(tt.err); got != tt.want {
				t.Errorf("CodeOf(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestErrorfWraps(t *testing.T) {
	sentinel := errors.New("storage: out of range")
	err := transport.Errorf(transport.OutOfRange, "read %d: %w", 3, sentinel)
	if !errors.Is(err, sentinel) {
		t.Errorf("Errorf with %%w does not wrap")
	}
	if err.Message() != "read 3: storage: out of range" {
		t.Errorf("Message = %q", err.Message())
	}
	if err.Error() != "transport: out_of_range: read 3: storage: out of range" {
		t.Errorf("Error = %q", err.Error())
	}
	if _, ok := err.NotLeader(); ok {
		t.Errorf("plain error has a NotLeader detail")
	}
	if got := transport.Errorf(transport.Internal, "x").Unwrap(); got != nil {
		t.Errorf("Errorf without %%w wraps %v", got)
	}
}

func TestNotLeaderDetail(t *testing.T) {
	nl := transport.NotLeader{LeaderID: "n2", LeaderAddr: "127.0.0.1:8402"}
	err := fmt.Errorf("produce: %w", transport.NotLeaderError(nl, "not the leader"))
	got, ok := transport.NotLeaderDetail(err)
	if !ok || got != nl {
		t.Fatalf("NotLeaderDetail = %v, %v", got, ok)
	}
	if _, ok := transport.NotLeaderDetail(io.EOF); ok {
		t.Errorf("NotLeaderDetail(io.EOF) found a detail")
	}
	if back := transport.NotLeaderFromProto(nl.Proto()); back != nl {
		t.Errorf("proto round trip = %v", back)
	}
	if zero := transport.NotLeaderFromProto((*logv1.NotLeader)(nil)); zero != (transport.NotLeader{}) {
		t.Errorf("nil proto = %v", zero)
	}
	plain := transport.Errorf(transport.Unavailable, "no leader")
	with := plain.WithNotLeader(nl)
	if _, ok := plain.NotLeader(); ok {
		t.Errorf("WithNotLeader modified its receiver")
	}
	if got, _ := with.NotLeader(); got != nl || with.Code() != transport.Unavailable {
		t.Errorf("WithNotLeader = %v", with)
	}
}

func TestAsError(t *testing.T) {
	if transport.AsError(nil) != nil {
		t.Errorf("AsError(nil) != nil")
	}
	e := transport.Errorf(transport.NotFound, "x")
	if transport.AsError(fmt.Errorf("w: %w", e)) != e {
		t.Errorf("AsError does not find the *Error in the chain")
	}
	got := transport.AsError(context.DeadlineExceeded)
	if got.Code() != transport.DeadlineExceeded || !errors.Is(got, context.DeadlineExceeded) {
		t.Errorf("AsError(DeadlineExceeded) = %v", got)
	}
}

func TestCodeString(t *testing.T) {
	for c, want := range map[transport.Code]string{
		transport.OK: "ok", transport.FailedPrecondition: "failed_precondition",
		transport.Unauthenticated: "unauthenticated", 99: "code_99",
	} {
		if c.String() != want {
			t.Errorf("Code(%d).String() = %q, want %q", c, c.String(), want)
		}
	}
}

func TestPeerSubject(t *testing.T) {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "root"}}
	tests := []struct {
		name  string
		state *tls.ConnectionState
		want  string
	}{
		{"nil", nil, ""},
		{"unverified peer certificate", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}, ""},
		{"verified", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert}}}, "root"},
	}
	for _, tt := range tests {
		if got := transport.PeerSubject(tt.state); got != tt.want {
			t.Errorf("%s: PeerSubject = %q, want %q", tt.name, got, tt.want)
		}
	}
	ctx := transport.ContextWithPeer(context.Background(), transport.Peer{Subject: "root", Addr: "a"})
	if p, ok := transport.PeerFromContext(ctx); !ok || p.Subject != "root" {
		t.Errorf("PeerFromContext = %v, %v", p, ok)
	}
	if _, ok := transport.PeerFromContext(context.Background()); ok {
		t.Errorf("PeerFromContext of a bare context succeeded")
	}
}

func TestServerConfig(t *testing.T) {
	if err := (transport.ServerConfig{}).Validate(); !errors.Is(err, transport.ErrNoService) {
		t.Errorf("Validate without Log = %v", err)
	}
	c := transport.ServerConfig{}.WithDefaults()
	if c.MaxMessageBytes != transport.DefaultMaxMessageBytes || c.CompressMinBytes != transport.DefaultCompressMinBytes ||
		c.Keepalive.Time != transport.DefaultKeepaliveTime || c.Logger == nil {
		t.Errorf("WithDefaults = %+v", c)
	}
	if err := (transport.ServerConfig{Log: nopLog{}}).Validate(); err != nil {
		t.Errorf("Validate of a zero config with a Log = %v", err)
	}
	cc := transport.ClientConfig{KeepaliveTime: 1}.WithDefaults()
	if cc.KeepaliveTime != transport.MinClientPingInterval || cc.MaxMessageBytes != transport.DefaultMaxMessageBytes {
		t.Errorf("ClientConfig.WithDefaults = %+v", cc)
	}
}

// nopLog is a LogService for configurations that are never served.
type nopLog struct{ transport.LogService }

// TestServerConfigValidate: each field out of range is named, wrapped in ErrInvalidConfig.
func TestServerConfigValidate(t *testing.T) {
	tests := []struct {
		field string
		set   func(*transport.ServerConfig)
	}{
		{"MaxMessageBytes", func(c *transport.ServerConfig) { c.MaxMessageBytes = -1 }},
		{"CompressMinBytes", func(c *transport.ServerConfig) { c.CompressMinBytes = -1 }},
		{"Keepalive.Time", func(c *transport.ServerConfig) { c.Keepalive.Time = -time.Second }},
		{"Keepalive.Timeout", func(c *transport.ServerConfig) { c.Keepalive.Timeout = -time.Second }},
		{"Keepalive.MaxIdle", func(c *transport.ServerConfig) { c.Keepalive.MaxIdle = -time.Second }},
		{"Limits.MaxRecordMessageBytes", func(c *transport.ServerConfig) { c.Limits.MaxRecordMessageBytes = -1 }},
		{"Limits.MaxSmallMessageBytes", func(c *transport.ServerConfig) { c.Limits.MaxSmallMessageBytes = -1 }},
		{"Limits.MaxBatchRecords", func(c *transport.ServerConfig) { c.Limits.MaxBatchRecords = -1 }},
		{"Limits.ReadHeaderTimeout", func(c *transport.ServerConfig) { c.Limits.ReadHeaderTimeout = -time.Second }},
		{"Limits.RequestReadTimeout", func(c *transport.ServerConfig) { c.Limits.RequestReadTimeout = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			c := transport.ServerConfig{Log: nopLog{}}
			tt.set(&c)
			err := c.Validate()
			if !errors.Is(err, transport.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field+" ") {
				t.Fatalf("Validate = %v, want ErrInvalidConfig naming %s", err, tt.field)
			}
		})
	}
}
