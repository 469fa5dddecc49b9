package connect

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"

	"connectrpc.com/connect"

	"github.com/commitlog-go/commitlog/transport"
)

// toConnect converts an error a handler (or the interception hook)
// returned into the *connect.Error sent to the client, with the NotLeader
// detail when present. Errors connect-go built itself pass through.
func toConnect(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*transport.Error](err); !ok {
		if ce, ok := errors.AsType[*connect.Error](err); ok {
			return ce
		}
	}
	e := transport.AsError(err)
	ce := connect.NewError(connect.Code(e.Code()), errors.New(e.Message()))
	for _, m := range e.Details() {
		if d, derr := connect.NewErrorDetail(m); derr == nil {
			ce.AddDetail(d)
		}
	}
	return ce
}

// fromConnect converts an error returned by a connect-go client call into a
// *transport.Error, keeping its error details. io.EOF (end of stream)
// and nil pass through.
func fromConnect(err error) error {
	if err == nil {
		return nil
	}
	// connect-go ends a stream with an error wrapping io.EOF (sometimes a
	// *connect.Error with CodeUnknown); the status, if any, is elsewhere.
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	ce, ok := errors.AsType[*connect.Error](err)
	if !ok {
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			return transport.NewError(transport.CodeOf(err), err)
		}
		return transport.NewError(transport.Unavailable, err)
	}
	code := transport.Code(ce.Code())
	switch code {
	case transport.Canceled, transport.Internal, transport.Unknown:
		if connectionEnded(err) {
			// connect-go calls a reset or broken connection Canceled (on the server side, where
			// it means the client went away), and a connection closed under the call (a FIN:
			// the server's process died) an incomplete envelope, Internal. On the client both
			// mean the server did not answer, as grpc-go says (Unavailable): the caller
			// cancelled nothing, and may retry.
			code = transport.Unavailable
		}
	}
	// The message is connect-go's, without its code; the chain keeps connect-go's error (and
	// what it wraps: a TLS handshake's error, io.ErrUnexpectedEOF, ...) and, when the failure
	// tells what is wrong with the connection, the transport's word for it.
	var cause error = ce
	if why := connectionCause(ce); why != nil {
		cause = errors.Join(why, ce)
	}
	e := transport.NewError(code, errors.New(ce.Message())).WithCause(cause)
	for _, d := range ce.Details() {
		v, err := d.Value()
		if err != nil {
			continue
		}
		e = e.WithDetail(v)
	}
	return e
}

// connectionCause returns the transport error that says why the connection behind err, a
// connect-go client error, failed (ErrNotTLS, ErrServerCertificate, ErrTLSRefused), or nil.
// net/http and crypto/tls give typed errors for each.
func connectionCause(err error) error {
	if errors.Is(err, http.ErrSchemeMismatch) {
		// net/http's word for a TLS handshake answered with an HTTP/1 response.
		return transport.ErrNotTLS
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		// The first bytes the server sent are no TLS record (an HTTP/2 server's SETTINGS).
		return transport.ErrNotTLS
	}
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return transport.ErrServerCertificate
	}
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "remote error" {
		// crypto/tls reports an alert the server sent as a *net.OpError with this Op (the
		// alert's own type is unexported).
		return transport.ErrTLSRefused
	}
	return nil
}

// connectionEnded reports whether err is a call's connection reset, broken or closed under
// it (the response cut short), not the caller's cancellation or deadline.
func connectionEnded(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF)
}
