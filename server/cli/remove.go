package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/transport"
)

// removeServers removes ids from the cluster's configuration one at a time, in the order given:
// each RemoveServer returns once the leader committed the new configuration, so the next starts
// from it, and the quorum only ever shrinks by one voter at a time.
//
// A server about to be removed that is the leader first hands leadership to a voter that stays.
// The leader that removes a server remembers not to add it back while it is still alive in
// gossip (it stays alive until it is stopped: the chart's StatefulSet shrinks only after the
// removal), and a leader that removed itself took that memory with it: the next leader saw the
// removed server alive and added it back. (A leader asked to remove itself, as when an election
// gives leadership back to the server between the hand-over and its removal, now hands
// leadership over itself and refuses as not proposed: the SDK sends the removal on.)
//
// With missingOK, an id the leader's configuration does not list (InvalidArgument: the command
// refuses empty ids) counts as removed: a retry after a partial run, or a server an operator
// removed by hand.
//
// A transient failure of a step (the hand-over's target not caught up in time, an election, the
// leader lost mid-removal) does not end the command: the hand-over and the removal are tried
// again, after a short backoff, for up to --timeout per server (0: until the command is
// interrupted). A refusal (the removal would leave fewer answering voters than their quorum, an
// unknown id, a permission) ends it at once.
func removeServers(c *cli.Context, cl remover, ids []string, missingOK bool) error {
	for _, id := range ids {
		if err := removeServer(c, cl, id, ids, missingOK); err != nil {
			return err
		}
	}
	return nil
}

// remover is what cluster remove asks of the cluster: a *client.Client.
type remover interface {
	Servers(ctx context.Context) ([]client.Server, error)
	ServersAt(ctx context.Context, addr string) ([]client.Server, error)
	TransferLeadership(ctx context.Context, id string) (string, error)
	RemoveServer(ctx context.Context, id string) error
}

// Backoff between two tries of a removal step.
const (
	removeRetryFirst = 100 * time.Millisecond
	removeRetryMax   = 2 * time.Second
)

// removeServer hands leadership away from id when it leads, then removes it, trying both again
// while they fail transiently, within --timeout.
func removeServer(c *cli.Context, cl remover, id string, removing []string, missingOK bool) error {
	ctx, cancel := requestContext(c)
	defer cancel()
	maybeDone := false // an earlier try may have removed it (its outcome was unknown)
	wait := removeRetryFirst
	for {
		err := leadElsewhere(ctx, c, cl, id, removing)
		if err == nil {
			err = cl.RemoveServer(ctx, id)
			switch {
			case err == nil:
				fmt.Fprintf(c.App.Writer, "removed %s\n", id)
				return nil
			case transport.CodeOf(err) == transport.InvalidArgument && maybeDone:
				fmt.Fprintf(c.App.Writer, "removed %s\n", id) // by the try whose outcome was unknown
				return nil
			case transport.CodeOf(err) == transport.InvalidArgument && missingOK:
				fmt.Fprintf(c.App.Writer, "%s is not in the cluster's configuration: already removed\n", id)
				return nil
			case !transient(err):
				return err
			}
			maybeDone = maybeDone || errors.Is(err, client.ErrOutcomeUnknown)
		} else if !transient(err) && transport.CodeOf(err) != transport.FailedPrecondition {
			// A hand-over refused FailedPrecondition did not move leadership (its target did
			// not win in time, another transfer was under way): tried again.
			return err
		}
		fmt.Fprintf(c.App.ErrWriter, "commitlog: removing %s: %v; trying again\n", id, err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("removing %s: gave up after --timeout %v: %w", id, c.Duration("timeout"), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, removeRetryMax)
	}
}

// transient reports whether a step that failed with err may succeed if tried again: no leader
// known or reachable, leadership lost or moved mid-request (the outcome unknown), the request
// aborted. A refusal (FailedPrecondition, InvalidArgument, PermissionDenied...) is not.
func transient(err error) bool {
	if errors.Is(err, client.ErrClosed) || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, client.ErrUnavailable) || errors.Is(err, client.ErrOutcomeUnknown) || errors.Is(err, client.ErrNotLeader) {
		return true
	}
	switch transport.CodeOf(err) {
	case transport.Unavailable, transport.Aborted:
		return true
	}
	return false
}

// leadElsewhere hands leadership from id, when id leads, to a voter not in removing: one whose
// heartbeats the leader receives, the most up to date of those (a transfer to a server that is
// down fails). It does nothing when id does not lead or no such voter exists (the server then
// refuses to remove its last voter itself).
func leadElsewhere(ctx context.Context, c *cli.Context, cl remover, id string, removing []string) error {
	servers, err := cl.Servers(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(servers, func(s client.Server) bool { return s.ID == id && s.IsLeader })
	if i < 0 {
		return nil
	}
	// Only the leader knows which followers it hears from: any other server reports each one
	// healthy. Asked directly; its answer replaces the first.
	if view, err := cl.ServersAt(ctx, servers[i].Addr); err == nil {
		servers = view
	}
	var stay []client.Server
	for _, s := range servers {
		if s.Voter && !slices.Contains(removing, s.ID) {
			stay = append(stay, s)
		}
	}
	if len(stay) == 0 {
		return nil
	}
	slices.SortStableFunc(stay, func(a, b client.Server) int {
		if a.Healthy != b.Healthy {
			if a.Healthy {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Lag, b.Lag)
	})
	to, err := cl.TransferLeadership(ctx, stay[0].ID)
	if err != nil {
		return fmt.Errorf("before removing the leader %s: %w", id, err)
	}
	if to == "" { // the server did not know the new leader yet
		to = stay[0].ID
	}
	fmt.Fprintf(c.App.Writer, "leadership handed from %s to %s\n", id, to)
	return nil
}
