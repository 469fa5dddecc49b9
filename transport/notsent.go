package transport

import (
	"errors"
	"net"
	"strings"
	"syscall"
)

// NeverSent reports whether err, returned by a transport client, proves that the request never
// left it: no connection to the server could be made (a failed dial, a refused connection, an
// unresolved name), or the call's context ended while its connection was still being set up.
// Both transports say so partly in the message of the error they build locally: grpc-go as
// "…Error while dialing…" and "…while waiting for connections to become ready". A write that
// failed so was not proposed, and may be sent again.
func NeverSent(err error) bool {
	if err == nil {
		return false
	}
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "dial" {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	if _, ok := errors.AsType[*net.DNSError](err); ok {
		return true
	}
	m := err.Error()
	if e, ok := errors.AsType[*Error](err); ok {
		m = e.Message()
	}
	m = strings.ToLower(m)
	return strings.Contains(m, "while dialing") || strings.Contains(m, "connection refused") ||
		strings.Contains(m, "while waiting for connections to become ready")
}
