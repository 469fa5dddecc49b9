package casbin_test

import (
	"context"
	"errors"
	"testing"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/authz/casbin"
)

// TestHostileSubjectsDenied checks that subjects built to look like policy
// fields, matcher expressions or policy lines never ride on root's rules.
// casbin's file adapter reads policies as CSV, but the request side is never
// parsed: a subject must match a rule's subject verbatim.
func TestHostileSubjectsDenied(t *testing.T) {
	subjects := []struct {
		subject     string
		invalidName bool // refused by validation before casbin sees it
	}{
		{subject: "root, *, produce"},
		{subject: "root,*,produce"},
		{subject: `"root"`},
		{subject: `root"`},
		{subject: `root", "*", "produce`},
		{subject: " root"},
		{subject: "root "},
		{subject: "root\t", invalidName: true},
		{subject: "root\n", invalidName: true},
		{subject: "root\r\n", invalidName: true},
		{subject: "root\np, nobody, *, produce", invalidName: true},
		{subject: "root\x00", invalidName: true},
		{subject: "root\u2028", invalidName: true},
		{subject: "r.sub"},
		{subject: "p.sub"},
		{subject: "root || true"},
		{subject: `root" || "1" == "1`},
		{subject: "*"},
		{subject: "", invalidName: true},
	}
	configs := map[string]casbin.Config{
		"seed model":    {ModelFile: seedModel, PolicyFile: seedPolicy},
		"default model": {PolicyFile: seedPolicy},
	}
	for name, cfg := range configs {
		a, err := casbin.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// The policy does grant root: prove the rule exists.
		if err := a.Authorize(context.Background(), "root", authz.ObjectAll, authz.ActionProduce); err != nil {
			t.Fatalf("%s: root denied: %v", name, err)
		}
		for _, tt := range subjects {
			for _, action := range []string{authz.ActionProduce, authz.ActionConsume} {
				err := a.Authorize(context.Background(), tt.subject, authz.ObjectAll, action)
				if !errors.Is(err, authz.ErrDenied) {
					t.Errorf("%s: Authorize(%q, %q) = %v, want ErrDenied", name, tt.subject, action, err)
				}
				if got := errors.Is(err, authz.ErrInvalidSubject); got != tt.invalidName {
					t.Errorf("%s: Authorize(%q): ErrInvalidSubject = %v, want %v (%v)", name, tt.subject, got, tt.invalidName, err)
				}
			}
		}
	}
}

// TestQuotedPolicySubjectIsOpaque checks that a rule may name a subject
// containing CSV metacharacters (quoted, as CSV requires), and that it then
// matches that exact string only.
func TestQuotedPolicySubjectIsOpaque(t *testing.T) {
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy.csv", `p, "CN=app, O=acme", *, consume`+"\n"+`p, "say ""hi""", *, produce`+"\n")
	a, err := casbin.New(casbin.Config{PolicyFile: policy})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		subject, action string
		allowed         bool
	}{
		{"CN=app, O=acme", authz.ActionConsume, true},
		{"CN=app", authz.ActionConsume, false},
		{"O=acme", authz.ActionConsume, false},
		{`"CN=app, O=acme"`, authz.ActionConsume, false},
		{"CN=app, O=acme", authz.ActionProduce, false},
		{`say "hi"`, authz.ActionProduce, true},
		{`say ""hi""`, authz.ActionProduce, false},
	}
	for _, tt := range tests {
		err := a.Authorize(context.Background(), tt.subject, authz.ObjectAll, tt.action)
		if tt.allowed != (err == nil) {
			t.Errorf("Authorize(%q, %q) = %v, want allowed=%v", tt.subject, tt.action, err, tt.allowed)
		}
	}
}
