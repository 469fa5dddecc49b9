package serf_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/serf"
)

// Two nodes form a cluster: the second one joins the first through StartJoinAddrs, and the
// first one's handler learns the second's API address from its tags.
func Example() {
	key, err := serf.GenerateKey() // share it with every node, e.g. through a secret
	if err != nil {
		log.Fatal(err)
	}

	joins := make(chan discovery.Member, 16)
	seed, err := serf.New(serf.Config{
		NodeName:   "node-1",
		BindAddr:   "127.0.0.1:0", // port 0: any free port; real nodes use a fixed one
		Tags:       map[string]string{"rpc_addr": "127.0.0.1:8400"},
		EncryptKey: key,
		Timing:     serf.TimingTest, // fast gossip for a single machine; omit in production
		Handler: discovery.HandlerFunc(func(e discovery.Event) {
			if e.Type == discovery.EventJoin {
				joins <- e.Member
			}
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer seed.Close()

	other, err := serf.New(serf.Config{
		NodeName:       "node-2",
		BindAddr:       "127.0.0.1:0",
		Tags:           map[string]string{"rpc_addr": "127.0.0.1:8410"},
		EncryptKey:     key,
		Timing:         serf.TimingTest,
		StartJoinAddrs: []string{seed.LocalMember().Addr},
	})
	if err != nil {
		log.Fatal(err)
	}

	timeout := time.After(30 * time.Second)
	for seen := 0; seen < 2; seen++ { // node-1 itself, then node-2
		select {
		case m := <-joins:
			fmt.Println("join:", m.Name, m.Tags["rpc_addr"])
		case <-timeout:
			log.Fatal("no join")
		}
	}

	// Leave tells the others that node-2 is going (they see EventLeave, not EventFailed),
	// then closes it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := other.Leave(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// join: node-1 127.0.0.1:8400
	// join: node-2 127.0.0.1:8410
}
