package tlsutil_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
)

// A CA, a server certificate and a client certificate for the client "root",
// written to disk and turned into mutual-TLS configurations, as
// `commitlog tls ...` and `commitlog serve --server-tls-...` do.
func Example() {
	dir, err := os.MkdirTemp("", "tlsutil-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := func(name string) string { return filepath.Join(dir, name) }

	ca, err := certgen.CreateCA(certgen.Options{CommonName: "commitlog CA"})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, err := certgen.CreateServerCert(ca, certgen.Options{CommonName: "node-1"}) // localhost, 127.0.0.1, ::1
	if err != nil {
		fmt.Println(err)
		return
	}
	root, err := certgen.CreateClientCert(ca, certgen.Options{CommonName: "root"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range []struct {
		kp   *certgen.KeyPair
		name string
	}{{ca, "ca"}, {srv, "server"}, {root, "root"}} {
		if err := w.kp.WriteFiles(path(w.name+".pem"), path(w.name+"-key.pem"), false); err != nil {
			fmt.Println(err)
			return
		}
	}

	serverCfg, err := tlsutil.ServerConfig(path("server.pem"), path("server-key.pem"), path("ca.pem"))
	if err != nil {
		fmt.Println(err)
		return
	}
	clientCfg, err := tlsutil.ClientConfig(path("root.pem"), path("root-key.pem"), path("ca.pem"), "localhost")
	if err != nil {
		fmt.Println(err)
		return
	}
	keyInfo, _ := os.Stat(path("root-key.pem"))
	fmt.Println("server requires client certificates:", serverCfg.ClientAuth)
	fmt.Println("client verifies server name:", clientCfg.ServerName)
	fmt.Println("key file mode:", keyInfo.Mode().Perm())
	// Output:
	// server requires client certificates: RequireAndVerifyClientCert
	// client verifies server name: localhost
	// key file mode: -rw-------
}
