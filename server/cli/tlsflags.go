package cli

import (
	"crypto/tls"

	"github.com/urfave/cli/v2"
)

// clientTLS builds the client's TLS configuration from the client flags; nil means plaintext.
func clientTLS(c *cli.Context) (*tls.Config, error) {
	if c.String("tls-ca-file") == "" && c.String("tls-cert-file") == "" {
		return nil, nil
	}
	return nil, nil // replaced when server/tlsutil lands
}
