package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/server"
	"github.com/commitlog-go/commitlog/server/tlsutil"
)

// clientTLS builds the client's TLS configuration from the client flags (--tls-cert-file,
// --tls-key-file, --tls-ca-file, --tls-server-name); nil means plaintext. Any of them turns TLS
// on; without --tls-ca-file the server's certificate is verified against the system's roots.
func clientTLS(c *cli.Context) (*tls.Config, error) {
	cert, key, ca, name := c.String("tls-cert-file"), c.String("tls-key-file"), c.String("tls-ca-file"), c.String("tls-server-name")
	if err := needPair("tls-cert-file", cert, "tls-key-file", key); err != nil {
		return nil, err
	}
	// Each file is loaded alone first, so that an error names the flag that gave it: the SDK's
	// ("client TLS: client: bad TLS files: CA file: open …") named no flag.
	if ca != "" {
		if _, err := client.LoadTLS(ca, "", "", ""); err != nil {
			return nil, fmt.Errorf("--tls-ca-file %s: %w", ca, err)
		}
	}
	if cert != "" {
		if _, err := client.LoadTLS("", cert, key, ""); err != nil {
			return nil, fmt.Errorf("--tls-cert-file %s, --tls-key-file %s: %w", cert, key, err)
		}
	}
	cfg, err := client.LoadTLS(ca, cert, key, name) // nil when every flag is empty
	if err != nil {
		return nil, fmt.Errorf("client TLS: %w", err)
	}
	return cfg, nil
}

// serveTLS holds serve's security flags: TLS, ACL and gossip encryption.
type serveTLS struct {
	serverCert, serverKey, serverCA string
	peerCert, peerKey, peerCA       string
	peerServerName                  string
	aclPolicy                       string
	gossipKeyFile                   string
	insecurePlaintextPeers          bool
}

func serveTLSFromFlags(c *cli.Context) serveTLS {
	return serveTLS{
		serverCert:     c.String("server-tls-cert-file"),
		serverKey:      c.String("server-tls-key-file"),
		serverCA:       c.String("server-tls-ca-file"),
		peerCert:       c.String("peer-tls-cert-file"),
		peerKey:        c.String("peer-tls-key-file"),
		peerCA:         c.String("peer-tls-ca-file"),
		peerServerName: c.String("peer-tls-server-name"),
		aclPolicy:      c.String("acl-policy-file"),
		gossipKeyFile:  c.String("gossip-key-file"),

		insecurePlaintextPeers: c.Bool("insecure-plaintext-peers"),
	}
}

// apply validates the flags, loads the files and fills cfg's TLS fields and GossipKey:
//
//   - ServerTLS (the API) from --server-tls-*: the certificate and key are required together;
//     --server-tls-ca-file additionally requires every client to present a certificate issued
//     by that CA (mutual TLS), whose common name is the identity ACLs authorize.
//   - PeerServerTLS and PeerClientTLS (Raft) from --peer-tls-*: all three files are required;
//     both ends present the peer certificate and require the other's to chain to the peer CA,
//     allow server authentication and name a node (`tls cert create --server --node-name`).
//     --peer-tls-server-name is the name verified in the certificates of dialed peers.
//     Without --peer-tls-*, mutual TLS on the API (--server-tls-ca-file) secures Raft too: the
//     server certificate, key and CA are the peer credentials (server.Config derives them).
//     API TLS without either is refused unless --insecure-plaintext-peers asks for plaintext
//     Raft (which logs a warning at every start).
//   - ForwardTLS, used by a follower to forward writes to the leader's API when the API uses
//     TLS: it presents the peer certificate (or, without peer TLS, the server certificate), and
//     verifies the leader's API certificate against --server-tls-ca-file (or --peer-tls-ca-file).
//     With mutual TLS on the API, peer certificates must therefore be issued by the CA the API
//     trusts, and allow client authentication (`commitlog tls cert create --server` ones do).
//
// GossipKey is read from --gossip-key-file (surrounding white space ignored; the key itself is
// checked when Serf starts). The file must not be accessible by group or others (but see
// gossipKeyModeSafe), and with TLS the key is required.
//
// An ACL policy requires mutual TLS: without a verified client certificate there is no identity
// to authorize, and every call would be refused.
func (f serveTLS) apply(cfg *server.Config) error {
	var errs []error
	errs = append(errs, needPair("server-tls-cert-file", f.serverCert, "server-tls-key-file", f.serverKey))
	apiTLS := f.serverCert != "" && f.serverKey != ""
	if f.serverCA != "" && f.serverCert == "" && f.serverKey == "" {
		errs = append(errs, errors.New("--server-tls-ca-file needs --server-tls-cert-file and --server-tls-key-file (client certificates are only asked for over TLS)"))
	}
	peerFlags := []struct{ name, value string }{
		{"peer-tls-cert-file", f.peerCert}, {"peer-tls-key-file", f.peerKey}, {"peer-tls-ca-file", f.peerCA},
	}
	// --peer-tls-ca-file defaults to --server-tls-ca-file, as its usage says: a peer certificate
	// and key given next to mutual TLS on the API were refused ("needs --peer-tls-ca-file").
	peerCADefault := f.peerCA == "" && f.serverCA != "" && (f.peerCert != "" || f.peerKey != "")
	var peerSet, peerMissing []string
	for _, p := range peerFlags {
		if p.value == "" && p.name == "peer-tls-ca-file" && peerCADefault {
			continue
		}
		if p.value == "" {
			peerMissing = append(peerMissing, "--"+p.name)
		} else {
			peerSet = append(peerSet, "--"+p.name)
		}
	}
	peerTLS := len(peerMissing) == 0
	if len(peerSet) > 0 && !peerTLS {
		errs = append(errs, fmt.Errorf("%s needs %s (peer TLS takes a certificate, its key and a CA)",
			strings.Join(peerSet, " and "), strings.Join(peerMissing, " and ")))
	}
	implicitPeerTLS := !peerTLS && apiTLS && f.serverCA != "" && !f.insecurePlaintextPeers
	if f.peerServerName != "" && !peerTLS && !implicitPeerTLS {
		errs = append(errs, errors.New("--peer-tls-server-name needs peer TLS: --peer-tls-cert-file, --peer-tls-key-file and --peer-tls-ca-file, or mutual TLS on the API (--server-tls-ca-file)"))
	}
	switch {
	case f.insecurePlaintextPeers && len(peerSet) > 0:
		errs = append(errs, fmt.Errorf("--insecure-plaintext-peers contradicts %s: drop one of them", strings.Join(peerSet, " and ")))
	case apiTLS && !peerTLS && f.serverCA == "" && !f.insecurePlaintextPeers:
		errs = append(errs, errors.New("the API has TLS but Raft, on the same port, would be plaintext (anyone reaching the port could depose the leader "+
			"and append records): add --server-tls-ca-file (mutual TLS; the server certificate then secures Raft too) or "+
			"--peer-tls-cert-file, --peer-tls-key-file and --peer-tls-ca-file; --insecure-plaintext-peers accepts the risk"))
	}
	if (apiTLS || peerTLS) && f.gossipKeyFile == "" {
		errs = append(errs, errors.New("TLS needs encrypted gossip: add --gossip-key-file (make a key with `commitlog tls gossip-key`, mode 0600)"))
	}
	if f.aclPolicy != "" && f.serverCA == "" {
		errs = append(errs, errors.New("--acl-policy-file needs mutual TLS on the API (--server-tls-cert-file, --server-tls-key-file and --server-tls-ca-file): clients are identified by their certificates"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	// Built from tlsutil.Sources, which SIGHUP reloads (server.Server.Reload).
	creds := map[string]*tlsutil.Source{}
	if apiTLS {
		src, err := tlsutil.NewSource(f.serverCert, f.serverKey, f.serverCA)
		if err != nil {
			return fmt.Errorf("--server-tls-*: %w", err)
		}
		if cfg.ServerTLS, err = src.ServerConfig(); err != nil {
			return fmt.Errorf("--server-tls-*: %w", err)
		}
		creds["server"] = src
	}
	if peerTLS {
		peerCA := f.peerCA
		if peerCADefault {
			peerCA = f.serverCA
		}
		src, err := tlsutil.NewSource(f.peerCert, f.peerKey, peerCA)
		if err != nil {
			return fmt.Errorf("--peer-tls-*: %w", err)
		}
		c, err := src.PeerConfig(f.peerServerName)
		if err != nil {
			return fmt.Errorf("--peer-tls-*: %w", err)
		}
		cfg.PeerServerTLS = c
		cfg.PeerClientTLS = c
		creds["peer"] = src
	}
	if apiTLS {
		// The leader is dialed at the API address it advertises, which its API certificate
		// must name anyway, since clients dial the same address.
		certSrc := creds["server"]
		if peerTLS {
			certSrc = creds["peer"]
		}
		roots := creds["server"].CAs()
		if roots == nil && peerTLS {
			roots = creds["peer"].CAs()
		}
		cfg.ForwardTLS = certSrc.ClientConfig(roots, "") // nil roots: the system's
	}
	if len(creds) > 0 {
		cfg.TLSCredentials = creds
	}
	cfg.PeerServerName = f.peerServerName
	cfg.InsecurePlaintextPeers = f.insecurePlaintextPeers
	if f.gossipKeyFile != "" {
		fi, err := os.Stat(f.gossipKeyFile)
		if err != nil {
			return fmt.Errorf("--gossip-key-file: %w", err)
		}
		owner := -1
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner = int(st.Uid)
		}
		if perm := fi.Mode().Perm(); !gossipKeyModeSafe(perm, owner, os.Geteuid()) {
			return fmt.Errorf("--gossip-key-file: %s is accessible by group or others (mode %#o): whoever reads it can join the gossip; chmod 600 it", f.gossipKeyFile, perm)
		}
		key, err := os.ReadFile(f.gossipKeyFile)
		if err != nil {
			return fmt.Errorf("--gossip-key-file: %w", err)
		}
		if cfg.GossipKey = strings.TrimSpace(string(key)); cfg.GossipKey == "" {
			return fmt.Errorf("--gossip-key-file: %s is empty (make a key with `commitlog tls gossip-key`)", f.gossipKeyFile)
		}
	}
	return nil
}

// needPair reports a certificate flag given without its key flag, or the reverse.
func needPair(certFlag, cert, keyFlag, key string) error {
	switch {
	case cert != "" && key == "":
		return fmt.Errorf("--%s needs --%s", certFlag, keyFlag)
	case key != "" && cert == "":
		return fmt.Errorf("--%s needs --%s", keyFlag, certFlag)
	}
	return nil
}

// gossipKeyModeSafe reports whether a gossip key file of mode perm, owned by user id owner (-1:
// unknown), is private enough for a process running as user id euid: nobody but its owner may
// access it, or, as PostgreSQL allows for its key files, it belongs to root, which granted its
// group read access (and nothing more), and this process is not root. That is how Kubernetes
// mounts a Secret into a pod running as a non-root user with an fsGroup: root-owned, mode
// 0440, the pod's group; the check is there to catch a key that its own user left readable at
// the umask, which such a file is not.
func gossipKeyModeSafe(perm os.FileMode, owner, euid int) bool {
	if perm&0o077 == 0 {
		return true
	}
	return owner == 0 && euid != 0 && perm&0o037 == 0
}
