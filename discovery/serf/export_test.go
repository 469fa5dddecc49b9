package serf

import "net"

// SetLookupIP replaces the resolver of host names until the returned function restores it.
func SetLookupIP(f func(host string) ([]net.IP, error)) (restore func()) {
	old := lookupIP
	lookupIP = f
	return func() { lookupIP = old }
}
