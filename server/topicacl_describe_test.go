package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestTopicACLProducerDescribes: a client that may only produce to a topic (`p, alice, orders,
// produce`, the README's example) may describe that topic, as Kafka's Write implies Describe:
// the SDK's Producer (and so `commitlog produce --topic`) describes a topic for its partition
// count and ID before it sends, and was refused. Describing another topic, listing topics and
// reading stay refused; on both transports and under the seed's model.
func TestTopicACLProducerDescribes(t *testing.T) {
	for _, tc := range []struct {
		model, tr string
	}{
		{"", TransportConnect},
		{filepath.Join(seedACLDir, "model.conf"), TransportGRPC},
	} {
		t.Run(tc.tr+"/model="+filepath.Base(tc.model), func(t *testing.T) {
			pki := newTestPKI(t)
			policy := filepath.Join(t.TempDir(), "policy.csv")
			if err := os.WriteFile(policy, []byte("p, alice, orders, produce\np, root, *, admin\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := pki.secureConfig(tc.tr, policy)
			cfg.ACLModelFile = tc.model
			srv := startServer(t, cfg)
			ctx := ctxT(t, 60*time.Second)
			client := func(name string) transport.TopicsClient {
				c := tlsClient(t, tc.tr, srv.Addr(), pki.client(pki.cert(name, certgen.Client, certgen.Options{CommonName: name})))
				return c.(transport.TopicsClient)
			}
			root, alice := client("root"), client("alice")
			for _, name := range []string{"orders", "payments"} {
				if _, err := root.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: name, Partitions: 3}); err != nil {
					t.Fatalf("CreateTopic %s as root: %v", name, err)
				}
			}
			res, err := alice.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "orders", RequireLeader: true})
			if err != nil {
				t.Fatalf("DescribeTopic orders as alice (produce on orders): %v, want it allowed", err)
			}
			if got := res.GetTopic().GetPartitions(); got != 3 {
				t.Errorf("DescribeTopic orders as alice: %d partitions, want 3", got)
			}
			if _, err := alice.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "payments"}); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("DescribeTopic payments as alice: %v, want PermissionDenied", err)
			}
			if _, err := alice.ListTopics(ctx, &logv1.ListTopicsRequest{}); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("ListTopics as alice (no consume anywhere): %v, want PermissionDenied", err)
			}
			if _, err := alice.(transport.Client).Consume(ctx, &logv1.ConsumeRequest{Topic: "orders"}); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("Consume orders as alice: %v, want PermissionDenied", err)
			}
		})
	}
}
