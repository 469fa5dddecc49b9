package server

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/commitlog-go/commitlog/server/telemetry"
	"github.com/commitlog-go/commitlog/server/tlsutil"
)

// tagInsecure is the Serf tag a node sets to "true" when it is insecure (see insecureReasons),
// so that GetServers on any node can say so of it.
const tagInsecure = "insecure"

// CertExpiryWarning is how long before a certificate expires the node starts logging warnings
// about it (at start, on Reload and every CertCheckInterval).
const CertExpiryWarning = 7 * 24 * time.Hour

// CertCheckInterval is how often a running node checks its certificates' expiry.
const CertCheckInterval = time.Hour

// insecureReasons lists what a node listening on ip leaves unprotected; none when ip is a
// loopback address (only this host can connect) or everything is protected. An unspecified
// address (0.0.0.0, ::) listens on every interface and counts as not loopback.
func insecureReasons(ip net.IP, cfg *Config, peerTLS bool) []string {
	if ip != nil && ip.IsLoopback() {
		return nil
	}
	var r []string
	if cfg.ServerTLS == nil {
		r = append(r, "the API has no TLS (--server-tls-*)")
	}
	if !peerTLS {
		r = append(r, "Raft has no TLS (--peer-tls-*)")
	}
	if cfg.GossipKey == "" && cfg.Membership == nil {
		r = append(r, "gossip is not encrypted (--gossip-key-file)")
	}
	return r
}

// warnIfInsecure logs, at every start, a warning naming what an insecure node leaves open.
func (s *Server) warnIfInsecure() {
	if len(s.insecure) == 0 {
		return
	}
	s.cfg.Logger.Warn("INSECURE: this node listens on a non-loopback address unprotected; anyone who can reach it can read, write or disrupt the log",
		"addr", s.ln.Addr().String(), "unprotected", strings.Join(s.insecure, "; "))
}

// insecureMembers returns which servers announce themselves insecure, by id, this node included.
func (s *Server) insecureMembers() map[string]bool {
	out := map[string]bool{s.cfg.NodeName: len(s.insecure) > 0}
	if s.serf == nil {
		return out
	}
	for _, m := range s.serf.Members() {
		if m.Name != s.cfg.NodeName {
			out[m.Name] = m.Tags[tagInsecure] == "true"
		}
	}
	return out
}

// Reload reads the ACL policy and the TLS certificates (Config.TLSCredentials) again, as SIGHUP
// does. What loads is used from then on — by every decision for the policy (open streams
// included: each is decided again before its next record), by every new handshake for
// certificates — and what does not keeps what was loaded before: the error says
// which file failed and why. It then checks the certificates' expiry. Safe for concurrent use.
func (s *Server) Reload() error {
	var errs []error
	if r, ok := s.acl.(interface{ Reload() error }); ok {
		if err := r.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("ACL policy %s: %w", s.cfg.ACLPolicyFile, err))
		} else {
			if s.svc != nil {
				s.svc.policyGen.Add(1) // open streams decide again
			}
			s.cfg.Logger.Info("reloaded the ACL policy", "file", s.cfg.ACLPolicyFile)
			logGroupChecks(s.cfg.Logger, s.acl)
		}
	}
	for _, role := range s.credentialRoles() {
		src := s.cfg.TLSCredentials[role]
		cert, _, ca := src.Files()
		reload := src.Reload
		if role == s.cfg.peerCertRole() {
			// As New requires (a restart would fail on them): the certificate names this node,
			// and peers trusting the new peer CA bundle accept it.
			reload = func() error { return src.ReloadPeer(s.namesThisNode) }
		}
		if err := reload(); err != nil {
			errs = append(errs, fmt.Errorf("%s TLS credentials: %w", role, err))
			continue
		}
		s.cfg.Logger.Info("reloaded TLS credentials", "role", role, "cert_file", cert, "ca_file", ca)
	}
	s.checkCertExpiry(time.Now())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("server: reload: %w", err)
	}
	return nil
}

// namesThisNode returns an error unless cert names this node, as a peer certificate must.
func (s *Server) namesThisNode(cert *x509.Certificate) error {
	if tlsutil.CertificateNamesNode(cert, s.cfg.NodeName) {
		return nil
	}
	return fmt.Errorf("certificate %q does not name node %q (it needs the DNS name %s; it names %v)",
		cert.Subject.CommonName, s.cfg.NodeName, tlsutil.NodeDNSName(s.cfg.NodeName), tlsutil.CertificateNodes(cert))
}

func (s *Server) credentialRoles() []string {
	roles := make([]string, 0, len(s.cfg.TLSCredentials))
	for r, src := range s.cfg.TLSCredentials {
		if src != nil {
			roles = append(roles, r)
		}
	}
	slices.Sort(roles)
	return roles
}

// certExpiries lists every certificate of the node's TLS credentials, for the expiry metric.
func (s *Server) certExpiries() []telemetry.CertExpiry {
	var out []telemetry.CertExpiry
	for _, role := range s.credentialRoles() {
		for _, e := range s.cfg.TLSCredentials[role].Expiries() {
			kind := "cert"
			if e.CA {
				kind = "ca"
			}
			out = append(out, telemetry.CertExpiry{Role: role, Kind: kind, Subject: e.Subject, NotAfter: e.NotAfter})
		}
	}
	return out
}

// checkCertExpiry logs a warning for every certificate that expires within CertExpiryWarning
// of now, and an error for every one already expired.
func (s *Server) checkCertExpiry(now time.Time) {
	for _, e := range s.certExpiries() {
		left := e.NotAfter.Sub(now)
		attrs := []any{"role", e.Role, "kind", e.Kind, "subject", e.Subject, "not_after", e.NotAfter.UTC().Format(time.RFC3339)}
		switch {
		case left <= 0:
			s.cfg.Logger.Error("certificate expired: handshakes with it fail; replace the file and send SIGHUP", attrs...)
		case left < CertExpiryWarning:
			s.cfg.Logger.Warn("certificate expires soon: replace the file and send SIGHUP", append(attrs, "expires_in", left.Round(time.Minute).String())...)
		}
	}
}

// certLoop checks the certificates' expiry every CertCheckInterval until the server stops.
func (s *Server) certLoop() {
	t := time.NewTicker(CertCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case now := <-t.C:
			s.checkCertExpiry(now)
		}
	}
}
