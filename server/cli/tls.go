package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/commitlog-go/commitlog/discovery/serf"
	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
)

// Defaults of the `tls` commands.
const (
	// DefaultNamePrefix starts the names of the files `tls ca create` and `tls cert create`
	// write: commitlog-ca.pem, commitlog-server.pem, commitlog-root-client.pem, ... An empty
	// prefix gives the seed's names (ca.pem, server.pem, root-client.pem, ...).
	DefaultNamePrefix = "commitlog"
	// DefaultCACommonName is the common name of a CA created without --common-name.
	DefaultCACommonName = "commitlog CA"
	// DefaultServerCommonName is the common name of a server certificate created without --cn.
	DefaultServerCommonName = "server"
	// DefaultPeerServerName is a DNS name every server certificate created without --dns or
	// --ip carries (besides localhost and the loopback addresses), so that servers can verify
	// each other with --peer-tls-server-name server.commitlog whatever their addresses.
	DefaultPeerServerName = "server.commitlog"
)

// ErrBadName means a common name or prefix cannot be part of a file name.
var ErrBadName = errors.New("cli: name cannot be used in a file name")

func tlsCommand() *cli.Command {
	return &cli.Command{
		Name:  "tls",
		Usage: "create the certificates and keys a cluster needs for mutual TLS, and gossip keys",
		Description: "Certificates are PEM files written into the current directory (or --dir); keys get mode 0600.\n" +
			"Existing files are never overwritten unless --force is given. A typical set:\n\n" +
			"   commitlog tls ca create\n" +
			"   commitlog tls cert create --server --node-name node1   # one per node: serve --node-name node1\n" +
			"   commitlog tls cert create --client --cn root",
		Subcommands: []*cli.Command{
			{
				Name:  "ca",
				Usage: "certificate authority commands",
				Subcommands: []*cli.Command{{
					Name:   "create",
					Usage:  "create a certificate authority: <prefix>-ca.pem and <prefix>-ca-key.pem",
					Flags:  caCreateFlags(),
					Action: caCreate,
				}},
			},
			{
				Name:  "cert",
				Usage: "certificate commands",
				Subcommands: []*cli.Command{{
					Name: "create",
					Usage: "create a server certificate (<prefix>-server.pem, or <prefix>-<cn>-server.pem with a --cn other than server) " +
						"or a client certificate (<prefix>-<cn>-client.pem), signed by the CA",
					Flags:  certCreateFlags(),
					Action: certCreate,
				}},
			},
			{
				Name: "gossip-key",
				Usage: "create a new random key (base64) for encrypting Serf gossip: printed, or written to a " +
					"mode 0600 file with --out",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "out", Usage: "file to write the key into (mode 0600, whatever the umask); default: print it"},
					&cli.BoolFlag{Name: "force", Usage: "overwrite the --out file if it exists"},
				},
				Action: gossipKey,
			},
		},
	}
}

func gossipKey(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("tls gossip-key takes no arguments, got %q", c.Args().Slice())
	}
	out := c.String("out")
	if out == "" && c.Bool("force") {
		return errors.New("--force needs --out")
	}
	key, err := serf.GenerateKey()
	if err != nil {
		return err
	}
	if out == "" {
		_, err = fmt.Fprintln(c.App.Writer, key)
		return err
	}
	if err := certgen.WriteSecretFile(out, []byte(key+"\n"), c.Bool("force")); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists: give --force to overwrite: %w", out, fs.ErrExist)
		}
		return err
	}
	fmt.Fprintf(c.App.Writer, "created gossip key %s (mode 0600; keep it secret, give every node the same one with --gossip-key-file)\n", out)
	return nil
}

// fileFlags are the flags every file-writing tls command takes.
func fileFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "dir", Value: ".", Usage: "directory to write the files into (it must exist)"},
		&cli.StringFlag{Name: "name-prefix", Value: DefaultNamePrefix,
			Usage: "prefix of the file names; empty gives the seed's names (ca.pem, server.pem, root-client.pem)"},
		&cli.BoolFlag{Name: "force", Usage: "overwrite existing files"},
	}
}

func caCreateFlags() []cli.Flag {
	return append(fileFlags(),
		&cli.IntFlag{Name: "days", Value: certgen.DefaultCADays, Usage: "how many days the CA is valid"},
		&cli.StringFlag{Name: "common-name", Value: DefaultCACommonName, Usage: "common name of the CA"},
	)
}

func certCreateFlags() []cli.Flag {
	return append(fileFlags(),
		&cli.BoolFlag{Name: "server", Usage: "create a server certificate (server and client authentication: the API and peers)"},
		&cli.BoolFlag{Name: "client", Usage: "create a client certificate (client authentication; its --cn is the identity ACLs name)"},
		&cli.StringFlag{Name: "cn", Usage: "common name: the client identity (required with --client); default \"server\" with --server"},
		&cli.StringSliceFlag{Name: "dns", Usage: "DNS name the server certificate is valid for (repeat; default: localhost and " +
			DefaultPeerServerName + ", with the loopback addresses, when neither --dns nor --ip is given)"},
		&cli.StringSliceFlag{Name: "ip", Usage: "IP address the server certificate is valid for (repeat; an address given as --dns is refused)"},
		&cli.StringSliceFlag{Name: "node-name", Usage: "node (serve --node-name) the server certificate proves to be, as the DNS name " +
			"<node-name>" + tlsutil.NodeNameSuffix + "; peers admit and trust only certificates that name a node (repeat; default: this host's name, serve's default node name)"},
		&cli.StringFlag{Name: "ca-file", Usage: "CA certificate to sign with (default: <dir>/<prefix>-ca.pem)"},
		&cli.StringFlag{Name: "ca-key-file", Usage: "CA key to sign with (default: <dir>/<prefix>-ca-key.pem)"},
		&cli.IntFlag{Name: "days", Value: certgen.DefaultCertDays, Usage: "how many days the certificate is valid (at most as long as the CA)"},
	)
}

// fileBase returns the file name (without ".pem") of a file named name, with the prefix.
func fileBase(prefix, name string) (string, error) {
	if err := checkFileName(prefix, true); err != nil {
		return "", fmt.Errorf("--name-prefix: %w", err)
	}
	if prefix == "" {
		return name, nil
	}
	return prefix + "-" + name, nil
}

// checkFileName refuses names that would leave the directory or hide the file.
func checkFileName(name string, emptyOK bool) error {
	switch {
	case name == "" && emptyOK:
		return nil
	case name == "", strings.HasPrefix(name, "."), strings.ContainsAny(name, `/\`+"\x00"):
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	return nil
}

// daysFlag returns --days, from 1 to certgen.MaxDays: certgen takes 0 for its default, so
// --days 0 made a certificate valid for the default's years instead of being refused.
func daysFlag(c *cli.Context) (int, error) {
	if d := c.Int("days"); d < 1 || d > certgen.MaxDays {
		return 0, fmt.Errorf("--days %d: want 1 to %d", d, certgen.MaxDays)
	}
	return c.Int("days"), nil
}

func caCreate(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("tls ca create takes no arguments, got %q", c.Args().Slice())
	}
	base, err := fileBase(c.String("name-prefix"), "ca")
	if err != nil {
		return err
	}
	days, err := daysFlag(c)
	if err != nil {
		return err
	}
	if err := checkDir(c.String("dir")); err != nil {
		return err
	}
	ca, err := certgen.CreateCA(certgen.Options{CommonName: c.String("common-name"), Days: days})
	if err != nil {
		return err
	}
	return writeKeyPair(c, ca, base, fmt.Sprintf("CA %q", ca.Cert.Subject.CommonName))
}

func certCreate(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("tls cert create takes no arguments, got %q", c.Args().Slice())
	}
	kind, cn := certgen.Server, c.String("cn")
	switch {
	case c.Bool("server") == c.Bool("client"):
		return errors.New("tls cert create needs exactly one of --server and --client")
	case c.Bool("client"):
		kind = certgen.Client
		if cn == "" {
			return errors.New("--client needs --cn, the client identity that ACL policies name")
		}
		if len(c.StringSlice("dns")) > 0 || len(c.StringSlice("ip")) > 0 || len(c.StringSlice("node-name")) > 0 {
			return errors.New("--dns, --ip and --node-name are for server certificates only")
		}
	case cn == "":
		cn = DefaultServerCommonName
	}
	if err := checkFileName(cn, false); err != nil {
		return fmt.Errorf("--cn: %w", err)
	}
	name := kind.String()
	if cn != kind.String() {
		name = cn + "-" + name
	}
	base, err := fileBase(c.String("name-prefix"), name)
	if err != nil {
		return err
	}
	caBase, err := fileBase(c.String("name-prefix"), "ca")
	if err != nil {
		return err
	}
	dir := c.String("dir")
	if err := checkDir(dir); err != nil {
		return err
	}
	caFile, caKeyFile := c.String("ca-file"), c.String("ca-key-file")
	if caFile == "" {
		caFile = filepath.Join(dir, caBase+".pem")
	}
	if caKeyFile == "" {
		caKeyFile = filepath.Join(dir, caBase+"-key.pem")
	}
	ca, err := certgen.LoadKeyPair(caFile, caKeyFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("load the CA (create one with `commitlog tls ca create`, or give --ca-file and --ca-key-file): %w", err)
		}
		return fmt.Errorf("load the CA: %w", err)
	}

	days, err := daysFlag(c)
	if err != nil {
		return err
	}
	opts := certgen.Options{CommonName: cn, Days: days, DNSNames: c.StringSlice("dns")}
	for _, s := range opts.DNSNames {
		// TLS clients match an address they dial against a certificate's IP addresses only.
		if net.ParseIP(s) != nil {
			return fmt.Errorf("--dns %q is an IP address: give it with --ip (clients dialing it never match a DNS name)", s)
		}
	}
	for _, s := range c.StringSlice("ip") {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("--ip %q is not an IP address", s)
		}
		opts.IPs = append(opts.IPs, ip)
	}
	if kind == certgen.Server && len(opts.DNSNames) == 0 && len(opts.IPs) == 0 {
		opts.DNSNames = []string{"localhost", DefaultPeerServerName}
		opts.IPs = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	var nodes []string
	if kind == certgen.Server {
		nodes = c.StringSlice("node-name")
		if len(nodes) == 0 {
			host, err := os.Hostname()
			if err != nil {
				return fmt.Errorf("--node-name: default to the host name: %w", err)
			}
			nodes = []string{host}
		}
		for _, n := range nodes {
			if err := tlsutil.ValidNodeName(n); err != nil {
				return fmt.Errorf("--node-name: %w", err)
			}
			opts.DNSNames = append(opts.DNSNames, tlsutil.NodeDNSName(n))
		}
	}
	kp, err := certgen.CreateCert(ca, kind, opts)
	if errors.Is(err, certgen.ErrOutlivesCA) {
		// certgen's error named the dates, not the flag: the default --days (365) fails so
		// against any CA with less than a year left, and the user did not give --days.
		if left := int(time.Until(ca.Cert.NotAfter).Hours() / 24); left >= 1 {
			return fmt.Errorf("--days %d: %w: give --days %d or fewer, or a CA valid for longer", days, err, left)
		}
		return fmt.Errorf("--days %d: %w: it has less than a day left: create a new CA", days, err)
	}
	if err != nil {
		return err
	}
	what := fmt.Sprintf("%s certificate %q signed by %q", kind, cn, ca.Cert.Subject.CommonName)
	if kind == certgen.Server {
		var sans []string
		sans = append(sans, kp.Cert.DNSNames...)
		for _, ip := range kp.Cert.IPAddresses {
			sans = append(sans, ip.String())
		}
		what += " for " + strings.Join(sans, ", ") + "; it proves to be node " + strings.Join(nodes, ", node ")
	}
	return writeKeyPair(c, kp, base, what)
}

// checkDir refuses a --dir that is not an existing directory, naming the flag: the error was
// the temporary file's ("open missing/.commitlog-ca-key.pem.tmp123: no such file or directory").
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("--dir %s does not exist: create it first", dir)
	case err != nil:
		return fmt.Errorf("--dir: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("--dir %s is not a directory", dir)
	}
	return nil
}

// writeKeyPair writes kp as <dir>/<base>.pem and <dir>/<base>-key.pem and says so.
func writeKeyPair(c *cli.Context, kp *certgen.KeyPair, base, what string) error {
	dir := c.String("dir")
	certFile := filepath.Join(dir, base+".pem")
	keyFile := filepath.Join(dir, base+"-key.pem")
	if err := kp.WriteFiles(certFile, keyFile, c.Bool("force")); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s or %s already exists: give --force to overwrite: %w", certFile, keyFile, fs.ErrExist)
		}
		return err
	}
	fmt.Fprintf(c.App.Writer, "created %s, valid until %s\n", what, kp.Cert.NotAfter.Format("2006-01-02"))
	fmt.Fprintf(c.App.Writer, "  certificate: %s\n", certFile)
	fmt.Fprintf(c.App.Writer, "  key:         %s (mode 0600; keep it secret)\n", keyFile)
	return nil
}
