// Package certask records whether a TLS server asked a client for a certificate the client
// has none of, for the transports' clients to say so when a call then fails: a TLS 1.3
// server that requires one refuses it after the client's side of the handshake is done, and
// the client may see only the connection end.
package certask

import (
	"crypto/tls"
	"errors"
	"sync/atomic"

	"github.com/commitlog-go/commitlog/transport"
)

// Probe is one client's record. The zero value is ready; a nil *Probe records nothing.
type Probe struct{ asked atomic.Bool }

// Config returns cfg, or, when cfg gives no client certificate, a copy of it that records
// in p that a server asked for one (and sends none, as cfg would).
func (p *Probe) Config(cfg *tls.Config) *tls.Config {
	if p == nil || cfg == nil || len(cfg.Certificates) > 0 || cfg.GetClientCertificate != nil {
		return cfg
	}
	cfg = cfg.Clone()
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		p.asked.Store(true)
		return &tls.Certificate{}, nil
	}
	return cfg
}

// Mark adds transport.ErrNoClientCertificate to the chain of err, an Unavailable
// *transport.Error, when a server asked the client for a certificate it does not have; it
// returns any other err unchanged.
func (p *Probe) Mark(err error) error {
	if te, ok := err.(*transport.Error); ok && p != nil && te.Code() == transport.Unavailable && p.asked.Load() {
		return te.WithCause(errors.Join(transport.ErrNoClientCertificate, te.Unwrap()))
	}
	return err
}
