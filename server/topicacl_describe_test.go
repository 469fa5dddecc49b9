package server

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestTopicACLDescribe: a client that may only produce to a topic (`p, alice, orders, produce`,
// the README's example) may describe that topic, as Kafka's Write implies Describe: the SDK's
// Producer (and so `commitlog produce --topic`) describes a topic for its partition count and ID
// before it sends, and was refused. A client that may only administer a topic (`p, ops, orders,
// admin`) may describe it too, as Kafka's Alter and Delete imply Describe: `commitlog topic
// describe orders` was refused to the operator who created it. Each lists the topics it may
// describe; describing another topic and reading stay refused; on both transports and under the
// seed's model.
func TestTopicACLDescribe(t *testing.T) {
	for _, tc := range []struct {
		model, tr string
	}{
		{"", TransportConnect},
		{filepath.Join(seedACLDir, "model.conf"), TransportGRPC},
	} {
		t.Run(tc.tr+"/model="+filepath.Base(tc.model), func(t *testing.T) {
			pki := newTestPKI(t)
			policy := filepath.Join(t.TempDir(), "policy.csv")
			rules := "p, alice, orders, produce\np, ops, orders, admin\np, root, *, admin\n"
			if err := os.WriteFile(policy, []byte(rules), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := pki.secureConfig(tc.tr, policy)
			cfg.ACLModelFile = tc.model
			srv := startServer(t, cfg)
			ctx := ctxT(t, 60*time.Second)
			clients := map[string]transport.TopicsClient{}
			client := func(name string) transport.TopicsClient {
				if c, ok := clients[name]; ok {
					return c
				}
				c := tlsClient(t, tc.tr, srv.Addr(), pki.client(pki.cert(name, certgen.Client, certgen.Options{CommonName: name})))
				clients[name] = c.(transport.TopicsClient)
				return clients[name]
			}
			root := client("root")
			for _, name := range []string{"orders", "payments"} {
				if _, err := root.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: name, Partitions: 3}); err != nil {
					t.Fatalf("CreateTopic %s as root: %v", name, err)
				}
			}
			for _, who := range []struct {
				name, rule string
				topics     []string // what ListTopics answers
			}{
				{"alice", "produce on orders", []string{"orders"}},
				{"ops", "admin on orders", []string{"orders"}},
				{"root", "admin on *", []string{"default", "orders", "payments"}},
			} {
				c := client(who.name)
				res, err := c.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "orders", RequireLeader: true})
				if err != nil {
					t.Fatalf("DescribeTopic orders as %s (%s): %v, want it allowed", who.name, who.rule, err)
				}
				if got := res.GetTopic().GetPartitions(); got != 3 {
					t.Errorf("DescribeTopic orders as %s: %d partitions, want 3", who.name, got)
				}
				list, err := c.ListTopics(ctx, &logv1.ListTopicsRequest{})
				if err != nil {
					t.Fatalf("ListTopics as %s (%s): %v", who.name, who.rule, err)
				}
				var got []string
				for _, topic := range list.GetTopics() {
					got = append(got, topic.GetName())
				}
				if !slices.Equal(got, who.topics) {
					t.Errorf("ListTopics as %s (%s) = %v, want %v", who.name, who.rule, got, who.topics)
				}
				if who.name == "root" {
					continue
				}
				if _, err := c.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "payments"}); transport.CodeOf(err) != transport.PermissionDenied {
					t.Errorf("DescribeTopic payments as %s: %v, want PermissionDenied", who.name, err)
				}
				if _, err := c.(transport.Client).Consume(ctx, &logv1.ConsumeRequest{Topic: "orders"}); transport.CodeOf(err) != transport.PermissionDenied {
					t.Errorf("Consume orders as %s: %v, want PermissionDenied", who.name, err)
				}
			}
			nobody := client("nobody")
			if _, err := nobody.ListTopics(ctx, &logv1.ListTopicsRequest{}); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("ListTopics as nobody: %v, want PermissionDenied", err)
			}
			if _, err := nobody.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "orders"}); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("DescribeTopic orders as nobody: %v, want PermissionDenied", err)
			}
		})
	}
}
