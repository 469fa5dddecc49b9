package casbin_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/authz/casbin"
)

func allowed(t *testing.T, a authz.Authorizer, subject, action string) bool {
	t.Helper()
	err := a.Authorize(context.Background(), subject, authz.ObjectAll, action)
	if err != nil && !errors.Is(err, authz.ErrDenied) {
		t.Fatalf("Authorize(%q, %q) = %v, want nil or ErrDenied", subject, action, err)
	}
	return err == nil
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy.csv", "p, root, *, produce\n")
	a, err := casbin.New(casbin.Config{PolicyFile: policy})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name        string
		policy      string // written before Reload; "-" removes the file
		wantErr     bool
		rootProduce bool
		bobConsume  bool
	}{
		{name: "grant bob", policy: "p, root, *, produce\np, bob, *, consume\n", rootProduce: true, bobConsume: true},
		{name: "malformed keeps previous", policy: "p, root, *\n", wantErr: true, rootProduce: true, bobConsume: true},
		{name: "missing keeps previous", policy: "-", wantErr: true, rootProduce: true, bobConsume: true},
		{name: "revoke root", policy: "p, bob, *, consume\n", bobConsume: true},
		{name: "revoke all", policy: "\n"},
		{name: "malformed after revoke keeps deny", policy: "p, root, *, produce, x\n", wantErr: true},
	}
	for _, st := range steps {
		if st.policy == "-" {
			if err := os.Remove(policy); err != nil {
				t.Fatal(err)
			}
		} else {
			writeFile(t, dir, "policy.csv", st.policy)
		}
		err := a.Reload()
		if st.wantErr != (err != nil) {
			t.Fatalf("%s: Reload = %v, want error=%v", st.name, err, st.wantErr)
		}
		if got := allowed(t, a, "root", authz.ActionProduce); got != st.rootProduce {
			t.Errorf("%s: root produce allowed = %v, want %v", st.name, got, st.rootProduce)
		}
		if got := allowed(t, a, "bob", authz.ActionConsume); got != st.bobConsume {
			t.Errorf("%s: bob consume allowed = %v, want %v", st.name, got, st.bobConsume)
		}
	}
}

// TestReloadConcurrentWithAuthorize runs decisions while the policy flips
// between two versions. Every decision must come from one complete policy:
// root may always produce (both versions grant it), and the race detector
// checks the swap.
func TestReloadConcurrentWithAuthorize(t *testing.T) {
	dir := t.TempDir()
	v1 := "p, root, *, produce\n"
	v2 := "p, root, *, produce\np, bob, *, consume\n"
	policy := writeFile(t, dir, "policy.csv", v1)
	a, err := casbin.New(casbin.Config{PolicyFile: policy})
	if err != nil {
		t.Fatal(err)
	}
	const readers, decisions, reloads = 4, 300, 30
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for range readers {
		wg.Go(func() {
			for range decisions {
				if err := a.Authorize(context.Background(), "root", authz.ObjectAll, authz.ActionProduce); err != nil {
					errs <- err
					return
				}
				if err := a.Authorize(context.Background(), "eve", authz.ObjectAll, authz.ActionProduce); !errors.Is(err, authz.ErrDenied) {
					errs <- err
					return
				}
			}
		})
	}
	for i := range reloads {
		writeFile(t, dir, "policy.csv", []string{v1, v2}[i%2])
		if err := a.Reload(); err != nil {
			t.Fatalf("Reload %d: %v", i, err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("decision during reload: %v", err)
	}
}

// TestDecisionsPastCacheLimit checks decisions stay right once the decision
// cache is full: later triples are evaluated, not guessed.
func TestDecisionsPastCacheLimit(t *testing.T) {
	policy := writeFile(t, t.TempDir(), "policy.csv", "p, user-7, *, consume\np, user-4500, *, consume\n")
	a, err := casbin.New(casbin.Config{PolicyFile: policy})
	if err != nil {
		t.Fatal(err)
	}
	const n = casbin.MaxCachedDecisions + 1000
	for round := range 2 {
		for i := range n {
			subject := fmt.Sprintf("user-%d", i)
			want := i == 7 || i == 4500
			if got := allowed(t, a, subject, authz.ActionConsume); got != want {
				t.Fatalf("round %d: %s consume allowed = %v, want %v", round, subject, got, want)
			}
		}
	}
}
