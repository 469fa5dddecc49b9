// Command custom-server assembles a commitlog server from swapped modules through
// server.Config, the composition root's public options:
//
//   - storage/memory instead of storage/segment for the commit log (server.Config.OpenLog);
//   - discovery/static, a fixed member list, instead of Serf gossip (server.Config.Membership);
//   - its own authz.Authorizer instead of casbin (server.Config.Authorizer): everyone may
//     produce and consume, nobody may administer the cluster.
//
// It runs the server in-process, talks to it with the client SDK and stops it.
//
//	go run .
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/static"
	"github.com/commitlog-go/commitlog/server"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/memory"
	"github.com/commitlog-go/commitlog/transport"
)

// noAdmin lets every caller produce and consume, and no caller administer.
type noAdmin struct{}

func (noAdmin) Authorize(_ context.Context, subject, object, action string) error {
	if action == authz.ActionAdmin {
		return &authz.DeniedError{Subject: subject, Object: object, Action: action}
	}
	return nil
}

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("custom-server: ok")
}

func run() error {
	dir, err := os.MkdirTemp("", "custom-server") // Raft's state; the commit log is in memory
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	srv, err := server.New(server.Config{
		DataDir:  dir,
		NodeName: "solo",
		BindAddr: "127.0.0.1:0", // with a custom membership only its host is used
		RPCPort:  -1,            // any free port: srv.Addr() tells which
		OpenLog: func(string) (storage.Log, error) {
			// The log must store every record the state machine applies, whatever the
			// record limit (memory's default, 4 MiB, is below it).
			l, err := memory.New(memory.Config{MaxRecordBytes: fsm.MaxStoredRecordBytes})
			if err != nil {
				return nil, err // not a typed nil in the interface
			}
			return l, nil
		},
		Membership: func(c server.MembershipConfig) (discovery.Membership, error) {
			// A fixed cluster would list its other servers here, built by server.PeerMember.
			return static.New(static.Config{
				Local:   discovery.Member{Name: c.NodeName, Tags: c.Tags},
				Handler: c.Handler,
				Logger:  c.Logger,
			})
		},
		Authorizer: noAdmin{},
		// An authorizer secures the API, and Raft shares its port: without peer TLS the
		// server refuses to start unless told that plaintext Raft (on loopback here) is meant.
		InsecurePlaintextPeers: true,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			log.Print("run: ", err)
		}
	}()

	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	c, err := client.New(cctx, []string{srv.Addr()})
	if err != nil {
		return err
	}
	defer c.Close()
	first, err := c.ProduceBatch(cctx, []byte("kept"), []byte("in"), []byte("memory"))
	if err != nil {
		return err
	}
	rec, err := c.Consume(cctx, first+2)
	if err != nil {
		return err
	}
	fmt.Printf("consume %d: %s\n", rec.Offset, rec.Value)
	if string(rec.Value) != "memory" {
		return fmt.Errorf("read %q", rec.Value)
	}
	err = c.RemoveServer(cctx, "solo")
	if transport.CodeOf(err) != transport.PermissionDenied {
		return fmt.Errorf("RemoveServer: %v, want PermissionDenied from the authorizer", err)
	}
	fmt.Println("remove-server refused by the authorizer:", err)
	return nil
}
