package static_test

import (
	"fmt"
	"log"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/static"
)

// A static membership reports a fixed list of members, each as one join event.
func Example() {
	done := make(chan struct{})
	m, err := static.New(static.Config{
		Local: discovery.Member{Name: "node-1", Tags: map[string]string{"rpc_addr": "10.0.0.1:8400"}},
		Peers: []discovery.Member{
			{Name: "node-2", Tags: map[string]string{"rpc_addr": "10.0.0.2:8400"}},
		},
		Handler: discovery.HandlerFunc(func(e discovery.Event) {
			fmt.Println(e.Type, e.Member.Name, e.Member.Tags["rpc_addr"])
			if e.Member.Name == "node-2" {
				close(done)
			}
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	<-done
	// Output:
	// join node-1 10.0.0.1:8400
	// join node-2 10.0.0.2:8400
}
