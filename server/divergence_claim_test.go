package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// leaderBounds is a transport.Client whose GetBounds answers as a leader would: sum as its
// checksum (nil: none), or err. It answers on whatever address it was made for, so a claim
// checked with no leader, or with none at a known address, would be confirmed by it.
type leaderBounds struct {
	transport.Client
	sum   *uint32
	err   error
	calls *atomic.Int32
}

func (c leaderBounds) GetBounds(_ context.Context, req *logv1.GetBoundsRequest) (*logv1.GetBoundsResponse, error) {
	c.calls.Add(1)
	if c.err != nil {
		return nil, c.err
	}
	return &logv1.GetBoundsResponse{Checksum: c.sum, ChecksumFrom: req.ChecksumFrom}, nil
}

func (leaderBounds) Close() error { return nil }

// TestClaimConfirmedOnlyByTheLeader: without client certificates, a follower believes a
// claim that its checksum differs from the cluster's (GetBounds' expected_checksum) only when
// the leader, asked, holds the claimed checksum. Where it cannot ask (no leader known, a
// leader known without an address) or the asking fails (the leader unreachable, or no client
// for it), the claim is refused: one curl must not make a server refuse reads until an
// operator repairs it. A leader believes none.
func TestClaimConfirmedOnlyByTheLeader(t *testing.T) {
	const claimed = uint32(0xc0ffee)
	other := claimed + 1
	leaderAt := consensus.Server{ID: "leader", Address: "leader:1"}
	unreachable := transport.Errorf(transport.Unavailable, "connection refused")
	for _, tc := range []struct {
		name      string
		node      consensus.Consensus
		sum       *uint32 // the leader's checksum
		callErr   error   // the leader's GetBounds fails with it
		clientErr error   // no client for the leader
		want      bool
		asks      bool   // the leader is asked
		logs      string // in the log
	}{
		{name: "leader confirms", node: followerNode{leader: leaderAt}, sum: new(claimed), want: true, asks: true},
		{name: "leader holds another checksum", node: followerNode{leader: leaderAt}, sum: &other, asks: true},
		{name: "leader computes no checksum", node: followerNode{leader: leaderAt}, asks: true},
		// followerNode's Leader is not ok without an ID: a stale address must not be asked.
		{name: "leader unknown", node: followerNode{leader: consensus.Server{Address: "leader:1"}}, sum: new(claimed)},
		{name: "leader without an address", node: followerNode{leader: consensus.Server{ID: "leader"}}, sum: new(claimed)},
		{name: "forward to the leader fails", node: followerNode{leader: leaderAt}, sum: new(claimed), callErr: unreachable, asks: true,
			logs: "cannot check a claim"},
		{name: "no client for the leader", node: followerNode{leader: leaderAt}, sum: new(claimed), clientErr: errors.New("bad address"),
			logs: "cannot check a claim"},
		{name: "on the leader", node: laggingLeader{}, sum: new(claimed)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			fwd := newForwarder(func(string, transport.ClientConfig) (transport.Client, error) {
				if tc.clientErr != nil {
					return nil, tc.clientErr
				}
				return leaderBounds{sum: tc.sum, err: tc.callErr, calls: &calls}, nil
			}, transport.ClientConfig{}, DefaultMaxForwardClients)
			t.Cleanup(func() { _ = fwd.Close() })
			var logs syncBuffer
			svc := &service{node: tc.node, forward: fwd, cfg: &Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}}
			at, expected := uint64(7), claimed
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got := svc.claimConfirmed(ctx, &logv1.GetBoundsRequest{ChecksumAt: &at, ExpectedChecksum: &expected})
			if got != tc.want {
				t.Errorf("claimConfirmed = %v, want %v", got, tc.want)
			}
			if asked := calls.Load() > 0; asked != tc.asks {
				t.Errorf("the leader asked: %v, want %v", asked, tc.asks)
			}
			if tc.logs != "" && !strings.Contains(logs.String(), tc.logs) {
				t.Errorf("log %q does not say %q", logs.String(), tc.logs)
			}
		})
	}
}
