package casbin_test

import (
	"context"
	"errors"
	"testing"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/authz/casbin"
)

// TestTopicObjects: the object is a topic name. A subject allowed on one topic is refused on
// another; "*" rules allow every topic under both models (through authz.AuthorizeTopic); a
// request without a topic is for the default topic; AuthorizeAnyObject says whether some
// topic is allowed.
func TestTopicObjects(t *testing.T) {
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy.csv", `p, alice, orders, produce
p, alice, orders, consume
p, ops, orders, admin
p, legacy, default, consume
p, root, *, produce
p, root, *, consume
`)
	for name, model := range map[string]string{"default model": "", "seed model": seedModel} {
		t.Run(name, func(t *testing.T) {
			a, err := casbin.New(casbin.Config{ModelFile: model, PolicyFile: policy})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for _, tt := range []struct {
				subject, topic, action string
				allowed                bool
			}{
				{"alice", "orders", authz.ActionProduce, true},
				{"alice", "orders", authz.ActionConsume, true},
				{"alice", "payments", authz.ActionProduce, false},
				{"alice", "payments", authz.ActionConsume, false},
				{"alice", "", authz.ActionConsume, false},
				{"alice", "orders", authz.ActionAdmin, false},
				{"ops", "orders", authz.ActionAdmin, true},
				{"ops", "payments", authz.ActionAdmin, false},
				{"legacy", "", authz.ActionConsume, true},
				{"legacy", "orders", authz.ActionConsume, false},
				{"root", "orders", authz.ActionProduce, true},
				{"root", "payments", authz.ActionConsume, true},
				{"root", "", authz.ActionProduce, true},
				{"root", "orders", authz.ActionAdmin, false},
				{"nobody", "", authz.ActionConsume, false},
			} {
				err := authz.AuthorizeTopic(ctx, a, tt.subject, tt.topic, tt.action)
				if tt.allowed != (err == nil) {
					t.Errorf("AuthorizeTopic(%q, %q, %q) = %v, want allowed=%v", tt.subject, tt.topic, tt.action, err, tt.allowed)
				}
				if err != nil && !errors.Is(err, authz.ErrDenied) {
					t.Errorf("AuthorizeTopic(%q, %q, %q) = %v, want ErrDenied", tt.subject, tt.topic, tt.action, err)
				}
			}
			for _, tt := range []struct {
				subject, action string
				allowed         bool
			}{
				{"alice", authz.ActionProduce, true},
				{"alice", authz.ActionAdmin, false},
				{"ops", authz.ActionAdmin, true},
				{"ops", authz.ActionConsume, false},
				{"legacy", authz.ActionConsume, true},
				{"root", authz.ActionConsume, true},
				{"root", authz.ActionAdmin, false},
				{"nobody", authz.ActionConsume, false},
			} {
				for range 2 { // the second answer comes from the cache
					err := a.AuthorizeAnyObject(ctx, tt.subject, tt.action)
					if tt.allowed != (err == nil) {
						t.Errorf("AuthorizeAnyObject(%q, %q) = %v, want allowed=%v", tt.subject, tt.action, err, tt.allowed)
					}
					if err != nil && !errors.Is(err, authz.ErrDenied) {
						t.Errorf("AuthorizeAnyObject(%q, %q) = %v, want ErrDenied", tt.subject, tt.action, err)
					}
				}
			}
			if err := a.AuthorizeAnyObject(ctx, "bad\nsubject", authz.ActionConsume); !errors.Is(err, authz.ErrInvalidSubject) {
				t.Errorf("AuthorizeAnyObject with a newline in the subject = %v, want ErrInvalidSubject", err)
			}
		})
	}
}

// TestAnyObjectFollowsReload: the objects AuthorizeAnyObject considers are the reloaded
// policy's.
func TestAnyObjectFollowsReload(t *testing.T) {
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy.csv", "p, alice, orders, produce\n")
	a, err := casbin.New(casbin.Config{PolicyFile: policy})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.AuthorizeAnyObject(ctx, "bob", authz.ActionProduce); err == nil {
		t.Fatal("bob may produce somewhere before the reload")
	}
	writeFile(t, dir, "policy.csv", "p, alice, orders, produce\np, bob, payments, produce\n")
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := a.AuthorizeAnyObject(ctx, "bob", authz.ActionProduce); err != nil {
		t.Fatalf("after the reload: %v", err)
	}
}
