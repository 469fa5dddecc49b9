package cli

import (
	"cmp"
	"fmt"
	"slices"

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
// removed server alive and added it back.
//
// With missingOK, an id the leader's configuration does not list (InvalidArgument: the command
// refuses empty ids) counts as removed: a retry after a partial run, or a server an operator
// removed by hand.
func removeServers(c *cli.Context, cl *client.Client, ids []string, missingOK bool) error {
	for _, id := range ids {
		if err := leadElsewhere(c, cl, id, ids); err != nil {
			return err
		}
		err := cl.RemoveServer(c.Context, id)
		switch {
		case err == nil:
			fmt.Fprintf(c.App.Writer, "removed %s\n", id)
		case missingOK && transport.CodeOf(err) == transport.InvalidArgument:
			fmt.Fprintf(c.App.Writer, "%s is not in the cluster's configuration: already removed\n", id)
		default:
			return err
		}
	}
	return nil
}

// leadElsewhere hands leadership from id, when id leads, to a voter not in removing: one whose
// heartbeats the leader receives, the most up to date of those (a transfer to a server that is
// down fails). It does nothing when id does not lead or no such voter exists (the server then
// refuses to remove its last voter itself).
func leadElsewhere(c *cli.Context, cl *client.Client, id string, removing []string) error {
	servers, err := cl.Servers(c.Context)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(servers, func(s client.Server) bool { return s.ID == id && s.IsLeader })
	if i < 0 {
		return nil
	}
	// Only the leader knows which followers it hears from: any other server reports each one
	// healthy. Asked directly; its answer replaces the first.
	if view, err := cl.ServersAt(c.Context, servers[i].Addr); err == nil {
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
	to, err := cl.TransferLeadership(c.Context, stay[0].ID)
	if err != nil {
		return fmt.Errorf("before removing the leader %s: %w", id, err)
	}
	if to == "" { // the server did not know the new leader yet
		to = stay[0].ID
	}
	fmt.Fprintf(c.App.Writer, "leadership handed from %s to %s\n", id, to)
	return nil
}
