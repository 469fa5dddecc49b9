package casbin_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/authz/casbin"
)

// TestSeedFilesUnchanged checks the seed project's model.conf and policy.csv,
// byte for byte as the seed shipped them, decide as they did in the seed;
// and that the embedded default model decides the same with the seed policy.
func TestSeedFilesUnchanged(t *testing.T) {
	// The SHA-256 of each file as the seed shipped it (its test/model.conf and test/policy.csv).
	for file, want := range map[string]string{
		seedModel:  "9696720d57f8d369403c7c910923de3842e14251239a4547c7655c9395216d5b",
		seedPolicy: "9636c493bcdd6d7fefe9599ec540a4347c5c02f62d47a7e31e45b24d19b78b2a",
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(b)); got != want {
			t.Fatalf("%s has SHA-256 %s, want the seed's %s: the seed's files must stay byte for byte as shipped", file, got, want)
		}
	}
	configs := map[string]casbin.Config{
		"seed model":    {ModelFile: seedModel, PolicyFile: seedPolicy},
		"default model": {PolicyFile: seedPolicy},
	}
	tests := []struct {
		subject, object, action string
		allowed                 bool
	}{
		{"root", authz.ObjectAll, authz.ActionProduce, true},
		{"root", authz.ObjectAll, authz.ActionConsume, true},
		{"root", authz.ObjectAll, authz.ActionAdmin, false},
		{"root", authz.ObjectAll, "delete", false},
		{"nobody", authz.ObjectAll, authz.ActionProduce, false},
		{"nobody", authz.ObjectAll, authz.ActionConsume, false},
		{"nobody", authz.ObjectAll, authz.ActionAdmin, false},
		{"unknown", authz.ObjectAll, authz.ActionConsume, false},
		{"Root", authz.ObjectAll, authz.ActionConsume, false},
		{"*", authz.ObjectAll, authz.ActionConsume, false},
	}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			a, err := casbin.New(cfg)
			if err != nil {
				t.Fatalf("New(%+v) = %v", cfg, err)
			}
			for _, tt := range tests {
				err := a.Authorize(context.Background(), tt.subject, tt.object, tt.action)
				switch {
				case tt.allowed && err != nil:
					t.Errorf("Authorize(%q, %q, %q) = %v, want allowed", tt.subject, tt.object, tt.action, err)
				case !tt.allowed && !errors.Is(err, authz.ErrDenied):
					t.Errorf("Authorize(%q, %q, %q) = %v, want ErrDenied", tt.subject, tt.object, tt.action, err)
				}
			}
		})
	}
}

// TestSeedModelHasNoWildcards checks that "*" in a rule is literal under the
// seed's model, and a wildcard only under the default model.
func TestWildcardOnlyInDefaultModel(t *testing.T) {
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy.csv", "p, *, *, consume\np, ops, *, admin\n")
	tests := []struct {
		name                    string
		model                   string
		subject, object, action string
		allowed                 bool
	}{
		{"default: any subject consumes", "", "anyone", authz.ObjectAll, authz.ActionConsume, true},
		{"default: any object", "", "anyone", "topic-a", authz.ActionConsume, true},
		{"default: no action wildcard", "", "anyone", authz.ObjectAll, authz.ActionProduce, false},
		{"default: ops admin on any object", "", "ops", "cluster", authz.ActionAdmin, true},
		{"default: admin is ops only", "", "anyone", authz.ObjectAll, authz.ActionAdmin, false},
		{"seed: * subject is literal", seedModel, "anyone", authz.ObjectAll, authz.ActionConsume, false},
		{"seed: * subject matches only *", seedModel, "*", authz.ObjectAll, authz.ActionConsume, true},
		{"seed: * object is literal", seedModel, "ops", "cluster", authz.ActionAdmin, false},
		{"seed: ops admin on *", seedModel, "ops", authz.ObjectAll, authz.ActionAdmin, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := casbin.New(casbin.Config{ModelFile: tt.model, PolicyFile: policy})
			if err != nil {
				t.Fatal(err)
			}
			err = a.Authorize(context.Background(), tt.subject, tt.object, tt.action)
			if tt.allowed != (err == nil) {
				t.Fatalf("Authorize(%q, %q, %q) = %v, want allowed=%v", tt.subject, tt.object, tt.action, err, tt.allowed)
			}
		})
	}
}

func TestAuthorizeCanceledContext(t *testing.T) {
	a, err := casbin.New(casbin.Config{PolicyFile: seedPolicy})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = a.Authorize(ctx, "root", authz.ObjectAll, authz.ActionProduce)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Authorize(canceled ctx) = %v, want context.Canceled", err)
	}
}
