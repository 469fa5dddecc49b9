package casbin_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/authz/casbin"
)

// groupPolicy names groups: group checks are on. alice may consume topic orders and group
// team-a; ops may administer team-a; root may consume everything ("*": every topic and every
// group); the rule for "group:team-b-*" names one group of that literal name under the default
// model, which matches objects exactly.
const groupPolicy = `p, alice, orders, consume
p, alice, group:team-a, consume
p, bob, orders, consume
p, bob, group:team-b-*, consume
p, ops, group:team-a, admin
p, root, *, consume
`

// TestGroupObjects: a policy that names a group object turns group checks on, and then a group
// is allowed only by a rule for its object ("group:<name>") or for "*", under both models; a
// denial names the group's object.
func TestGroupObjects(t *testing.T) {
	policy := writeFile(t, t.TempDir(), "policy.csv", groupPolicy)
	for name, model := range map[string]string{"default model": "", "seed model": seedModel} {
		t.Run(name, func(t *testing.T) {
			a, err := casbin.New(casbin.Config{ModelFile: model, PolicyFile: policy})
			if err != nil {
				t.Fatal(err)
			}
			if !a.GroupChecks() || !authz.GroupChecks(a) {
				t.Fatal("GroupChecks = false for a policy naming group objects")
			}
			ctx := context.Background()
			for _, tt := range []struct {
				subject, group, action string
				allowed                bool
			}{
				{"alice", "team-a", authz.ActionConsume, true},
				{"alice", "team-b", authz.ActionConsume, false},
				{"alice", "team-a", authz.ActionAdmin, false},
				{"alice", "orders", authz.ActionConsume, false}, // a topic's rule is not a group's
				{"bob", "team-b-*", authz.ActionConsume, true},
				{"bob", "team-b-x", authz.ActionConsume, false}, // exact match: no patterns
				{"ops", "team-a", authz.ActionAdmin, true},
				{"ops", "team-a", authz.ActionConsume, false},
				{"root", "team-a", authz.ActionConsume, true},
				{"root", "anything", authz.ActionConsume, true},
				{"root", "anything", authz.ActionAdmin, false},
				{"nobody", "team-a", authz.ActionConsume, false},
				{"alice", "team-a\u2028", authz.ActionConsume, false}, // refused before matching
			} {
				err := authz.AuthorizeGroup(ctx, a, tt.subject, tt.group, tt.action)
				if tt.allowed != (err == nil) {
					t.Errorf("AuthorizeGroup(%q, %q, %q) = %v, want allowed=%v", tt.subject, tt.group, tt.action, err, tt.allowed)
				}
				if err == nil {
					continue
				}
				var de *authz.DeniedError
				if !errors.Is(err, authz.ErrDenied) || !errors.As(err, &de) || de.Object != "group:"+tt.group {
					t.Errorf("AuthorizeGroup(%q, %q, %q) = %v, want a DeniedError naming object group:%s", tt.subject, tt.group, tt.action, err, tt.group)
				}
			}
			// The topic decisions are unchanged by group rules.
			if err := authz.AuthorizeTopic(ctx, a, "alice", "orders", authz.ActionConsume); err != nil {
				t.Errorf("alice consuming orders: %v", err)
			}
			if err := authz.AuthorizeTopic(ctx, a, "alice", "team-a", authz.ActionConsume); err == nil {
				t.Error("alice's group rule allowed a topic named team-a")
			}
		})
	}
}

// TestGroupChecksOff: a policy that names no group object ("*" rules included) leaves group
// checks off: every group is allowed to everyone, whatever the action, as before groups were
// objects of the policy.
func TestGroupChecksOff(t *testing.T) {
	for name, rules := range map[string]string{
		"topics only": "p, alice, orders, consume\np, root, *, consume\np, ops, *, admin\n",
		"empty":       "\n",
		"seed":        "p, root, *, produce\np, root, *, consume\n",
	} {
		t.Run(name, func(t *testing.T) {
			a, err := casbin.New(casbin.Config{PolicyFile: writeFile(t, t.TempDir(), "policy.csv", rules)})
			if err != nil {
				t.Fatal(err)
			}
			if a.GroupChecks() || authz.GroupChecks(a) {
				t.Fatal("GroupChecks = true for a policy naming no group")
			}
			for _, subject := range []string{"alice", "root", "nobody"} {
				for _, action := range []string{authz.ActionConsume, authz.ActionAdmin} {
					if err := a.AuthorizeGroup(context.Background(), subject, "g", action); err != nil {
						t.Errorf("AuthorizeGroup(%q, g, %q) with group checks off = %v", subject, action, err)
					}
				}
			}
		})
	}
	// Authorizers that are no GroupAuthorizer have no group checks.
	if authz.GroupChecks(authz.AllowAll{}) || authz.AuthorizeGroup(context.Background(), authz.AllowAll{}, "", "g", authz.ActionAdmin) != nil {
		t.Error("AllowAll has group checks")
	}
	deny := authz.AuthorizerFunc(func(context.Context, string, string, string) error { return authz.ErrDenied })
	if authz.GroupChecks(deny) || authz.AuthorizeGroup(context.Background(), deny, "alice", "g", authz.ActionConsume) != nil {
		t.Error("an AuthorizerFunc has group checks")
	}
}

// TestGroupChecksReload: Reload decides again whether the policy names groups, and a policy
// that does not load keeps the previous mode with the previous policy.
func TestGroupChecksReload(t *testing.T) {
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy.csv", "p, alice, orders, consume\n")
	a, err := casbin.New(casbin.Config{PolicyFile: policy})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, st := range []struct {
		name, policy string
		wantErr      bool
		on, aliceG   bool
	}{
		{name: "group rule", policy: "p, alice, orders, consume\np, bob, group:g, consume\n", on: true},
		{name: "alice's group", policy: "p, alice, orders, consume\np, alice, group:g, consume\n", on: true, aliceG: true},
		{name: "malformed keeps on", policy: "p, alice, group:h\n", wantErr: true, on: true, aliceG: true},
		{name: "no group rule", policy: "p, alice, orders, consume\n", aliceG: true},
	} {
		writeFile(t, dir, "policy.csv", st.policy)
		if err := a.Reload(); st.wantErr != (err != nil) {
			t.Fatalf("%s: Reload = %v, want error=%v", st.name, err, st.wantErr)
		}
		if a.GroupChecks() != st.on {
			t.Errorf("%s: GroupChecks = %v, want %v", st.name, a.GroupChecks(), st.on)
		}
		if err := a.AuthorizeGroup(ctx, "alice", "g", authz.ActionConsume); st.aliceG != (err == nil) {
			t.Errorf("%s: alice consuming group g = %v, want allowed=%v", st.name, err, st.aliceG)
		}
	}
}

// TestGroupPatterns: with a model whose matcher uses keyMatch for objects, a rule for
// "group:team-a-*" allows every group whose name starts with "team-a-", and still turns group
// checks on.
func TestGroupPatterns(t *testing.T) {
	dir := t.TempDir()
	model := writeFile(t, dir, "model.conf", strings.Replace(casbin.DefaultModel(),
		`(p.obj == "*" || r.obj == p.obj)`, `(p.obj == "*" || keyMatch(r.obj, p.obj))`, 1))
	a, err := casbin.New(casbin.Config{ModelFile: model, PolicyFile: writeFile(t, dir, "policy.csv", "p, alice, group:team-a-*, consume\n")})
	if err != nil {
		t.Fatal(err)
	}
	if !a.GroupChecks() {
		t.Fatal("GroupChecks = false")
	}
	ctx := context.Background()
	if err := a.AuthorizeGroup(ctx, "alice", "team-a-orders", authz.ActionConsume); err != nil {
		t.Errorf("alice on team-a-orders: %v", err)
	}
	if err := a.AuthorizeGroup(ctx, "alice", "team-b-orders", authz.ActionConsume); !errors.Is(err, authz.ErrDenied) {
		t.Errorf("alice on team-b-orders: %v, want ErrDenied", err)
	}
}

// TestGroupStarCoversUnnameableGroups: a group name the server accepts may hold a character no
// policy line can (a line or paragraph separator, a C1 control, a bidirectional-text control:
// authz.ValidateField refuses them, fsm.ValidateGroupName does not), so no rule can name its
// object. The "*" rules, which stand for every group, must still decide it: they were refused
// before matching, so once a policy named one group, an application allowed every group by
// "*" could no longer join such a group it had used all along, nor an administrator with
// "*" see, reset or delete it.
func TestGroupStarCoversUnnameableGroups(t *testing.T) {
	a, err := casbin.New(casbin.Config{PolicyFile: writeFile(t, t.TempDir(), "policy.csv", groupPolicy)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, group := range []string{"team-a\u2028", "billing\u200e", "x\u0085y", "\u202eevil"} {
		if err := a.AuthorizeGroup(ctx, "root", group, authz.ActionConsume); err != nil {
			t.Errorf("root (p, root, *, consume) on group %q: %v, want allowed", group, err)
		}
		for _, tt := range []struct{ subject, action string }{{"root", authz.ActionAdmin}, {"alice", authz.ActionConsume}, {"nobody", authz.ActionConsume}} {
			err := a.AuthorizeGroup(ctx, tt.subject, group, tt.action)
			var de *authz.DeniedError
			if !errors.Is(err, authz.ErrDenied) || !errors.As(err, &de) || de.Object != authz.GroupObject(group) {
				t.Errorf("AuthorizeGroup(%q, %q, %q) = %v, want a DeniedError naming the group's object", tt.subject, group, tt.action, err)
			}
		}
	}
	// The subject and the action are still validated.
	if err := a.AuthorizeGroup(ctx, "root\n", "team-a\u2028", authz.ActionConsume); !errors.Is(err, authz.ErrInvalidSubject) {
		t.Errorf("an invalid subject: %v, want ErrInvalidSubject", err)
	}
	if err := a.AuthorizeGroup(ctx, "root", "team-a\u2028", ""); !errors.Is(err, authz.ErrInvalidRequest) {
		t.Errorf("an empty action: %v, want ErrInvalidRequest", err)
	}
}
