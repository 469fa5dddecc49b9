package serf

import (
	"context"
	"net"

	hserf "github.com/hashicorp/serf/serf"
)

// SetLookupIP replaces the resolver of host names until the returned function restores it.
func SetLookupIP(f func(host string) ([]net.IP, error)) (restore func()) {
	old := lookupIP
	lookupIP = func(_ context.Context, host string) ([]net.IP, error) { return f(host) }
	return func() { lookupIP = old }
}

// GossipShutDown reports whether serf has shut down under m (as it does by itself when it
// loses a name conflict resolution), while m was not closed.
func (m *Membership) GossipShutDown() bool { return m.serf.State() == hserf.SerfShutdown }
