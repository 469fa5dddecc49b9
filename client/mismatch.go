package client

import (
	"errors"

	"github.com/commitlog-go/commitlog/transport"
)

// The errors that say the client's configuration likely does not match the server's: an
// error of a call (or of New) wraps one of them when the transport could tell why it could
// not talk to the server, next to the transport's error. Test them with errors.Is; the
// message says what to check.
var (
	// ErrTLSRequired: the server closed a plaintext connection during the HTTP/2 preface, as
	// a server that requires TLS does (WithTLS), and as one at its connection limit does
	// (serve --max-conns): the message names both.
	ErrTLSRequired = errors.New("client: the server likely requires TLS")
	// ErrServerNotTLS: the client speaks TLS (WithTLS) and the server answered in plaintext.
	ErrServerNotTLS = errors.New("client: the server does not use TLS")
	// ErrServerCertificate: the client did not verify the server's certificate: it is not
	// signed by a CA of the client's (RootCAs of WithTLS), or not issued for the name dialled
	// (ServerName), or expired.
	ErrServerCertificate = errors.New("client: the server's TLS certificate was not verified")
	// ErrClientCertificate: the server refused the TLS handshake, or closed the connection
	// after it: it likely requires a client certificate (Certificates of WithTLS), or does not
	// trust the one given (or, when it closed the connection at once, it is at its connection
	// limit: the message says so).
	ErrClientCertificate = errors.New("client: the server refused the client's TLS certificate")
	// ErrTransportMismatch: the server does not speak the client's transport: it speaks gRPC
	// only (WithTransport(TransportGRPC)).
	ErrTransportMismatch = errors.New("client: the server does not speak the client's transport")
)

// mismatchError is a call's error explained: kind is one of the errors above, hint says what
// to check.
type mismatchError struct {
	kind error
	hint string
	err  error
}

func (e *mismatchError) Error() string        { return e.hint + ": " + e.err.Error() }
func (e *mismatchError) Unwrap() error        { return e.err }
func (e *mismatchError) Is(target error) bool { return target == e.kind }

// explain wraps err in a mismatchError when the transport said why it could not talk to the
// server (the causes transport.ErrClosedInPreface, ErrNotTLS, ...) and the client's options say
// what that likely means; otherwise it returns err. It changes neither err's code nor its
// details: classify decides as it would without it.
func (c *Client) explain(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*mismatchError](err); ok {
		return err
	}
	tlsOn := c.opts.tls != nil
	withCert := tlsOn && (len(c.opts.tls.Certificates) > 0 || c.opts.tls.GetClientCertificate != nil)
	certHint := "does it require a client certificate? (Certificates of WithTLS)"
	if withCert {
		certHint = "does it trust the CA that signed the client certificate?"
	}
	// A server at its connection limit closes new connections at once, as the ones above do.
	const atLimit = "; or is it at its connection limit? (serve --max-conns)"
	var kind error
	var hint string
	switch {
	case errors.Is(err, transport.ErrGRPCOnly):
		kind, hint = ErrTransportMismatch, "the server speaks gRPC only: use the gRPC transport (WithTransport(TransportGRPC))"
	case errors.Is(err, transport.ErrNoClientCertificate):
		kind, hint = ErrClientCertificate, "the server asked for a TLS client certificate and the client has none: "+
			"does it require one? (Certificates of WithTLS)"
	case errors.Is(err, transport.ErrClosedInPreface) && !tlsOn:
		kind, hint = ErrTLSRequired, "the server closed the connection during the HTTP/2 preface: does it require TLS? (WithTLS)"+atLimit
	case errors.Is(err, transport.ErrClosedInPreface):
		kind, hint = ErrClientCertificate, "the server closed the connection after the TLS handshake: "+certHint+atLimit
	case errors.Is(err, transport.ErrNotTLS):
		kind, hint = ErrServerNotTLS, "the server answered the TLS handshake in plaintext: it does not use TLS (leave WithTLS out)"
	case errors.Is(err, transport.ErrServerCertificate):
		kind, hint = ErrServerCertificate, "the server's TLS certificate was not verified: is it signed by a CA of the client's (RootCAs of WithTLS), "+
			"and issued for the name dialled (ServerName)?"
	case errors.Is(err, transport.ErrTLSRefused):
		kind, hint = ErrClientCertificate, "the server refused the TLS handshake: "+certHint+atLimit
	default:
		return err
	}
	return &mismatchError{kind: kind, hint: hint, err: err}
}
