package server

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// topicACLPolicy: alice works on topic orders only; root on every topic ("*"); legacy, a seed
// client that names no topic, on the default topic only.
const topicACLPolicy = `p, alice, orders, produce
p, alice, orders, consume
p, alice, orders, admin
p, root, *, produce
p, root, *, consume
p, root, *, admin
p, legacy, default, produce
p, legacy, default, consume
p, legacy, default, admin
`

// topicCalls are the calls whose request names a topic, each for topic (whose records, if it
// has any, start at offset 0).
func topicCalls(topic string) []call {
	rec := func() *logv1.Record { return &logv1.Record{Value: []byte("x")} }
	return []call{
		{"Produce", func(ctx context.Context, c transport.Client) error {
			_, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: topic, Record: rec()})
			return err
		}},
		{"ProduceBatch", func(ctx context.Context, c transport.Client) error {
			_, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: topic, Records: []*logv1.Record{rec()}})
			return err
		}},
		{"ProduceStream", func(ctx context.Context, c transport.Client) error {
			s, err := c.ProduceStream(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			sendErr := s.Send(&logv1.ProduceRequest{Topic: topic, Record: rec()})
			if _, err := s.Receive(); err != nil {
				return err
			}
			return sendErr
		}},
		{"Consume", func(ctx context.Context, c transport.Client) error {
			_, err := c.Consume(ctx, &logv1.ConsumeRequest{Topic: topic, Offset: 0})
			return err
		}},
		{"ConsumeStream", func(ctx context.Context, c transport.Client) error {
			s, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Topic: topic, Offset: 0})
			if err != nil {
				return err
			}
			defer s.Close()
			_, err = s.Receive()
			return err
		}},
		{"GetBounds", func(ctx context.Context, c transport.Client) error {
			_, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Topic: topic})
			return err
		}},
		{"DescribeTopic", func(ctx context.Context, c transport.Client) error {
			_, err := c.(transport.TopicsClient).DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: topic})
			return err
		}},
		{"AlterTopicConfig", func(ctx context.Context, c transport.Client) error {
			ms := int64(time.Hour / time.Millisecond)
			_, err := c.(transport.TopicsClient).AlterTopicConfig(ctx, &logv1.AlterTopicConfigRequest{Name: topic, RetentionMs: &ms})
			return err
		}},
	}
}

// TestTopicACL: the casbin object is the topic. A subject allowed on one topic is refused
// (PermissionDenied, nothing stored) on another for every call naming a topic: produce,
// consume, the streams, bounds, describe and the admin calls; "*" rules allow every topic;
// requests without a topic are decided for object "default"; ListTopics answers with the
// topics the caller may consume. Under the default model and the seed's (where "*" in a rule
// is literal).
func TestTopicACL(t *testing.T) {
	for _, tc := range []struct {
		model, tr string
	}{
		{"", TransportConnect},
		{filepath.Join(seedACLDir, "model.conf"), TransportGRPC},
	} {
		t.Run(tc.tr+"/model="+filepath.Base(tc.model), func(t *testing.T) {
			pki := newTestPKI(t)
			policy := filepath.Join(t.TempDir(), "policy.csv")
			if err := os.WriteFile(policy, []byte(topicACLPolicy), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := pki.secureConfig(tc.tr, policy)
			cfg.ACLModelFile = tc.model
			srv := startServer(t, cfg)
			ctx := ctxT(t, 60*time.Second)
			client := func(name string) transport.Client {
				return tlsClient(t, tc.tr, srv.Addr(), pki.client(pki.cert(name, certgen.Client, certgen.Options{CommonName: name})))
			}
			root, alice, legacy, nobody := client("root"), client("alice"), client("legacy"), client("nobody")
			topics := func(c transport.Client) transport.TopicsClient { return c.(transport.TopicsClient) }

			for _, name := range []string{"orders", "payments"} {
				if _, err := topics(root).CreateTopic(ctx, &logv1.CreateTopicRequest{Name: name, Partitions: 1}); err != nil {
					t.Fatalf("CreateTopic %s as root: %v", name, err)
				}
			}
			// One record in each, so that every read below finds one.
			for _, topic := range []string{"", "orders", "payments"} {
				if _, err := root.Produce(ctx, &logv1.ProduceRequest{Topic: topic, Record: &logv1.Record{Value: []byte("first")}}); err != nil {
					t.Fatalf("Produce to %q as root: %v", topic, err)
				}
			}
			next := func(topic string) uint64 {
				t.Helper()
				b, err := root.GetBounds(ctx, &logv1.GetBoundsRequest{Topic: topic, Linearizable: true})
				if err != nil {
					t.Fatalf("GetBounds(%q) as root: %v", topic, err)
				}
				return b.GetNextOffset()
			}

			check := func(who string, c transport.Client, topic string, allowed bool) {
				t.Helper()
				before := next(topic)
				for _, call := range topicCalls(topic) {
					err := call.do(ctx, c)
					switch {
					case allowed && err != nil:
						t.Errorf("%s on topic %q as %s: %v, want it allowed", call.name, topic, who, err)
					case !allowed && transport.CodeOf(err) != transport.PermissionDenied:
						t.Errorf("%s on topic %q as %s: %v, want PermissionDenied", call.name, topic, who, err)
					}
				}
				if after := next(topic); !allowed && after != before {
					t.Errorf("refused calls of %s stored records in topic %q: next offset %d, was %d", who, topic, after, before)
				}
			}
			check("alice", alice, "orders", true)
			check("alice", alice, "payments", false)
			check("alice", alice, "", false)
			check("legacy", legacy, "", true)
			check("legacy", legacy, "default", true)
			check("legacy", legacy, "orders", false)
			check("nobody", nobody, "", false)
			check("nobody", nobody, "orders", false)
			for _, topic := range []string{"", "orders", "payments"} {
				check("root", root, topic, true)
			}

			// Creating and deleting need admin on the topic named.
			if _, err := topics(alice).CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "invoices"}); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("CreateTopic invoices as alice: %v, want PermissionDenied", err)
			}
			if _, err := topics(alice).DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "payments"}); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("DeleteTopic payments as alice: %v, want PermissionDenied", err)
			}

			// Listing: the topics the caller may consume, nothing for a stranger.
			list := func(c transport.Client) []string {
				t.Helper()
				res, err := topics(c).ListTopics(ctx, &logv1.ListTopicsRequest{})
				if err != nil {
					t.Fatalf("ListTopics: %v", err)
				}
				var names []string
				for _, tp := range res.GetTopics() {
					names = append(names, tp.GetName())
				}
				slices.Sort(names)
				return names
			}
			if got := list(alice); !slices.Equal(got, []string{"orders"}) {
				t.Errorf("ListTopics as alice = %v, want [orders]", got)
			}
			if got := list(legacy); !slices.Equal(got, []string{"default"}) {
				t.Errorf("ListTopics as legacy = %v, want [default]", got)
			}
			if got := list(root); !slices.Equal(got, []string{"default", "orders", "payments"}) {
				t.Errorf("ListTopics as root = %v, want every topic", got)
			}
			if _, err := topics(nobody).ListTopics(ctx, &logv1.ListTopicsRequest{}); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("ListTopics as nobody: %v, want PermissionDenied", err)
			}

			// A producer ID needs produce somewhere.
			if _, err := topics(alice).InitProducer(ctx, &logv1.InitProducerRequest{}); err != nil {
				t.Errorf("InitProducer as alice: %v", err)
			}
			if _, err := topics(nobody).InitProducer(ctx, &logv1.InitProducerRequest{}); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("InitProducer as nobody: %v, want PermissionDenied", err)
			}
			// Any identity with a right somewhere may find the servers.
			if _, err := alice.GetServers(ctx, &logv1.GetServersRequest{}); err != nil {
				t.Errorf("GetServers as alice: %v", err)
			}
			// Cluster administration is on "*": admin on one topic is not enough.
			if _, err := alice.TransferLeadership(ctx, &logv1.TransferLeadershipRequest{Id: "intruder"}); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("TransferLeadership as alice: %v, want PermissionDenied", err)
			}

			// A stream that moves to a topic the caller may not produce to ends there.
			ps, err := alice.ProduceStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer ps.Close()
			before := next("payments")
			if err := ps.Send(&logv1.ProduceRequest{Topic: "orders", Record: &logv1.Record{Value: []byte("ok")}}); err != nil {
				t.Fatal(err)
			}
			if _, err := ps.Receive(); err != nil {
				t.Fatalf("ProduceStream to orders as alice: %v", err)
			}
			_ = ps.Send(&logv1.ProduceRequest{Topic: "payments", Record: &logv1.Record{Value: []byte("no")}})
			if _, err := ps.Receive(); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("ProduceStream moving to payments as alice: %v, want PermissionDenied", err)
			}
			if after := next("payments"); after != before {
				t.Errorf("the refused stream stored records in payments: next offset %d, was %d", after, before)
			}

			if _, err := topics(alice).DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "orders"}); err != nil {
				t.Errorf("DeleteTopic orders as alice: %v", err)
			}
		})
	}
}

// TestTopicACLForwarded: through a follower of a two-node cluster with mutual TLS, a write
// and a topic command are forwarded to the leader, which decides for the client the follower
// names and the topic the request names: alice produces to orders and not to payments; ops
// creates orders2 only with admin on it; reads on the follower of a topic alice may consume
// work (the follower asks the leader for the topic's commit point on its own behalf).
func TestTopicACLForwarded(t *testing.T) {
	pki := newTestPKI(t)
	policy := filepath.Join(t.TempDir(), "policy.csv")
	if err := os.WriteFile(policy, []byte(topicACLPolicy+"p, ops, orders2, admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	leader, follower := startSecurePair(t, pki, TransportConnect, policy, func(cfg *Config) { cfg.ACLModelFile = "" })
	ctx := ctxT(t, 60*time.Second)
	client := func(name, addr string) transport.Client {
		return tlsClient(t, TransportConnect, addr, pki.client(pki.cert(name, certgen.Client, certgen.Options{CommonName: name})))
	}
	root := client("root", leader.Addr())
	for _, name := range []string{"orders", "payments"} {
		if _, err := root.(transport.TopicsClient).CreateTopic(ctx, &logv1.CreateTopicRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	alice := client("alice", follower.Addr())
	res, err := alice.Produce(ctx, &logv1.ProduceRequest{Topic: "orders", Record: &logv1.Record{Value: []byte("via the follower")}})
	if err != nil || res.GetOffset() != 0 {
		t.Fatalf("Produce to orders through the follower as alice = %v, %v", res, err)
	}
	got, err := alice.Consume(ctx, &logv1.ConsumeRequest{Topic: "orders", Offset: 0})
	if err != nil || string(got.GetRecord().GetValue()) != "via the follower" {
		t.Fatalf("Consume orders on the follower as alice = %v, %v", got, err)
	}
	if _, err := alice.Produce(ctx, &logv1.ProduceRequest{Topic: "payments", Record: &logv1.Record{Value: []byte("no")}}); transport.CodeOf(err) != transport.PermissionDenied {
		t.Errorf("Produce to payments through the follower as alice: %v, want PermissionDenied", err)
	}
	ops := client("ops", follower.Addr()).(transport.TopicsClient)
	if _, err := ops.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders2"}); err != nil {
		t.Errorf("CreateTopic orders2 through the follower as ops: %v", err)
	}
	if _, err := ops.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders3"}); transport.CodeOf(err) != transport.PermissionDenied {
		t.Errorf("CreateTopic orders3 through the follower as ops: %v, want PermissionDenied", err)
	}
	b, err := root.GetBounds(ctx, &logv1.GetBoundsRequest{Topic: "payments", Linearizable: true})
	if err != nil || b.GetNextOffset() != 0 {
		t.Errorf("payments after alice's refused write: %v, %v; want nothing stored", b, err)
	}
}
