package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/transport"
)

// fakeCluster is a remover whose answers a test scripts: n0 leads, n1 and n2 follow.
type fakeCluster struct {
	leader    string
	transfers []error // the answers of TransferLeadership, in turn (then nil)
	removals  []error // the answers of RemoveServer, in turn (then nil)
	calls     []string
}

func (f *fakeCluster) Servers(context.Context) ([]client.Server, error) {
	f.calls = append(f.calls, "servers")
	var out []client.Server
	for _, id := range []string{"n0", "n1", "n2"} {
		out = append(out, client.Server{ID: id, Addr: id + ":1", Voter: true, Healthy: true, IsLeader: id == f.leader})
	}
	return out, nil
}

func (f *fakeCluster) ServersAt(ctx context.Context, _ string) ([]client.Server, error) {
	return f.Servers(ctx)
}

func (f *fakeCluster) TransferLeadership(_ context.Context, id string) (string, error) {
	f.calls = append(f.calls, "transfer "+id)
	if len(f.transfers) > 0 {
		err := f.transfers[0]
		f.transfers = f.transfers[1:]
		if err != nil {
			return "", err
		}
	}
	f.leader = id
	return id, nil
}

func (f *fakeCluster) RemoveServer(_ context.Context, id string) error {
	f.calls = append(f.calls, "remove "+id)
	if len(f.removals) > 0 {
		err := f.removals[0]
		f.removals = f.removals[1:]
		return err
	}
	return nil
}

// runRemove runs removeServers against f with --timeout d.
func runRemove(t *testing.T, f *fakeCluster, d time.Duration, missingOK bool, ids ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	set := flag.NewFlagSet("remove", flag.ContinueOnError)
	set.Duration("timeout", d, "")
	c := cli.NewContext(&cli.App{Writer: &out, ErrWriter: &errOut}, set, nil)
	c.Context = t.Context()
	err := removeServers(c, f, ids, missingOK)
	return out.String(), errOut.String(), err
}

// TestClusterRemoveRetriesTransientFailures: a hand-over that failed transiently (its target
// not caught up in time, an election under way) and a removal that failed transiently (no
// leader, leadership lost mid-removal) are tried again within --timeout; the whole command
// failed at the first of them (the chart's scale-down Job failed, retried by Kubernetes from
// the start). A removal whose outcome was unknown and that the retry finds done counts as done.
func TestClusterRemoveRetriesTransientFailures(t *testing.T) {
	transferTimeout := fmt.Errorf("transfer leadership to %q: %w", "n1",
		transport.Errorf(transport.FailedPrecondition, "leadership was not transferred: consensus/raft: leadership transfer timeout"))
	f := &fakeCluster{
		leader:    "n0",
		transfers: []error{transferTimeout, fmt.Errorf("transfer: %w: no leader known", client.ErrUnavailable)},
		removals: []error{
			fmt.Errorf("remove server: %w: %w", client.ErrUnavailable, transport.Errorf(transport.Unavailable, "no leader")),
			fmt.Errorf("remove server: %w: leadership lost", client.ErrOutcomeUnknown),
			transport.Errorf(transport.InvalidArgument, `server "n0" is not in the cluster's configuration`),
		},
	}
	out, errOut, err := runRemove(t, f, 30*time.Second, false, "n0")
	if err != nil {
		t.Fatalf("cluster remove n0: %v (calls %v, stderr %q)", err, f.calls, errOut)
	}
	if out != "leadership handed from n0 to n1\nremoved n0\n" {
		t.Errorf("cluster remove n0 printed %q (calls %v)", out, f.calls)
	}
	if n := strings.Count(errOut, "trying again"); n != 4 {
		t.Errorf("stderr %q: want 4 tries again (2 hand-overs, 2 removals)", errOut)
	}
}

// TestClusterRemoveQuorumRefusalFailsAtOnce: the server's refusal of a removal that would
// leave fewer answering voters than their quorum is not retried: the command fails at once
// with its message. So is a removal that goes on failing transiently once --timeout is spent.
func TestClusterRemoveQuorumRefusalFailsAtOnce(t *testing.T) {
	quorum := transport.Errorf(transport.FailedPrecondition, `removing server "n1" would leave 2 voters of which 1 answer the leader, fewer than their quorum of 2`)
	f := &fakeCluster{leader: "n0", removals: []error{fmt.Errorf("remove server %q: %w", "n1", quorum)}}
	start := time.Now()
	_, _, err := runRemove(t, f, 30*time.Second, true, "n1", "n2")
	if !errors.Is(err, quorum) || !strings.Contains(err.Error(), "fewer than their quorum") || time.Since(start) > 5*time.Second {
		t.Errorf("cluster remove refused for quorum: %v after %v, want the refusal at once", err, time.Since(start))
	}
	if want := []string{"servers", "remove n1"}; fmt.Sprint(f.calls) != fmt.Sprint(want) {
		t.Errorf("calls %v, want %v (no retry, n2 not tried)", f.calls, want)
	}

	unavailable := fmt.Errorf("remove server: %w", client.ErrUnavailable)
	f = &fakeCluster{leader: "n0", removals: make([]error, 1000)}
	for i := range f.removals {
		f.removals[i] = unavailable
	}
	start = time.Now()
	_, _, err = runRemove(t, f, 500*time.Millisecond, false, "n1")
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "gave up after --timeout") || time.Since(start) > 5*time.Second {
		t.Errorf("cluster remove failing transiently past --timeout 500ms: %v after %v", err, time.Since(start))
	}
}
