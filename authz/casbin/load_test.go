package casbin_test

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/authz/casbin"
)

func TestNewFailsClosedOnBadPolicy(t *testing.T) {
	tests := []struct {
		name    string
		policy  string
		model   string // empty: embedded default
		wantErr error
		wantMsg string // a substring of the error
	}{
		{name: "too few fields", policy: "p, root, produce\n", wantErr: casbin.ErrInvalidPolicy, wantMsg: "policy.csv:1"},
		{name: "too many fields", policy: "p, root, *, produce\np, root, *, consume, extra\n", wantErr: casbin.ErrInvalidPolicy, wantMsg: "policy.csv:2"},
		{name: "unknown policy type", policy: "x, root, *, produce\n", wantErr: casbin.ErrInvalidPolicy, wantMsg: `"x"`},
		// The model's request, effect and matcher sections are assertions, not policy types.
		{name: "request section as a policy type", policy: "r, root, *, produce\n", wantErr: casbin.ErrInvalidPolicy, wantMsg: `"r"`},
		{name: "effect section as a policy type", policy: "e\n", wantErr: casbin.ErrInvalidPolicy, wantMsg: `"e"`},
		{name: "matcher section as a policy type", policy: "m\n", wantErr: casbin.ErrInvalidPolicy, wantMsg: `"m"`},
		// No trailing comments: the text would end the action, and the rule never match.
		{name: "trailing comment", policy: "p, root, *, produce          # every topic\n", wantErr: casbin.ErrInvalidPolicy, wantMsg: "trailing comment"},
		{name: "role rule without role definition", policy: "g, alice, root\n", wantErr: casbin.ErrInvalidPolicy, wantMsg: `"g"`},
		{name: "unterminated quote", policy: "p, \"root, *, produce\n", wantErr: casbin.ErrInvalidPolicy, wantMsg: "policy.csv:1"},
		{name: "bare quote", policy: "p, ro\"ot, *, produce\n", wantErr: casbin.ErrInvalidPolicy, wantMsg: `policy.csv:1: parse error on line 1, column 6: bare "`},
		{name: "empty subject", policy: "p, , *, produce\n", wantErr: casbin.ErrInvalidPolicy, wantMsg: "empty"},
		{name: "empty policy type", policy: ", root, *, produce\n", wantErr: casbin.ErrInvalidPolicy, wantMsg: "policy.csv:1: missing policy type"},
		{name: "control character", policy: "p, ro\x01ot, *, produce\n", wantErr: casbin.ErrInvalidPolicy, wantMsg: "control"},
		{name: "invalid UTF-8", policy: "p, ro\xffot, *, produce\n", wantErr: casbin.ErrInvalidPolicy, wantMsg: "UTF-8"},
		{name: "bad line after good lines", policy: "# comment\n\np, root, *, produce\r\nnot a rule\n", wantErr: casbin.ErrInvalidPolicy, wantMsg: "policy.csv:4"},
		{name: "seed model, bad policy", policy: "p, root\n", model: seedModel, wantErr: casbin.ErrInvalidPolicy, wantMsg: `policy.csv:1: "p" rule has 1 fields, the model defines 3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantMsg == "" {
				t.Fatal("every case names what its error must say (any error would pass otherwise)")
			}
			policy := writeFile(t, t.TempDir(), "policy.csv", tt.policy)
			a, err := casbin.New(casbin.Config{ModelFile: tt.model, PolicyFile: policy})
			if a != nil || !errors.Is(err, tt.wantErr) {
				t.Fatalf("New = %v, %v; want nil, %v", a, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %q does not contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestNewFailsClosedOnBadModel(t *testing.T) {
	const (
		req    = "[request_definition]\nr = sub, obj, act\n"
		pol    = "[policy_definition]\np = sub, obj, act\n"
		eff    = "[policy_effect]\ne = some(where (p.eft == allow))\n"
		match  = "[matchers]\nm = r.sub == p.sub && r.obj == p.obj && r.act == p.act\n"
		policy = "p, root, *, produce\n"
	)
	tests := []struct {
		name  string
		model string
	}{
		{name: "empty", model: ""},
		{name: "not a model", model: "hello\n"},
		{name: "missing request definition", model: pol + eff + match},
		{name: "misspelt section", model: strings.Replace(req, "request_definition", "request definition", 1) + pol + eff + match},
		{name: "missing matchers", model: req + pol + eff},
		{name: "missing effect", model: req + pol + match},
		{name: "unsupported effect", model: req + pol + "[policy_effect]\ne = some(wher (p.eft == allow))\n" + match},
		{name: "matcher syntax error", model: req + pol + eff + "[matchers]\nm = r.sub == \n"},
		{name: "matcher with unknown function", model: req + pol + eff + "[matchers]\nm = nosuch(r.sub, p.sub)\n"},
		// Deny by default: a model under which a request no rule names is allowed fails closed.
		{name: "allow by default effect", model: req + pol + "[policy_effect]\ne = !some(where (p.eft == deny))\n" + match},
		{name: "matcher matching every rule", model: req + pol + eff + "[matchers]\nm = true\n"},
		{name: "two request fields", model: "[request_definition]\nr = sub, act\n[policy_definition]\np = sub, act\n" + eff + "[matchers]\nm = r.sub == p.sub && r.act == p.act\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := casbin.Config{
				ModelFile:  writeFile(t, dir, "model.conf", tt.model),
				PolicyFile: writeFile(t, dir, "policy.csv", policy),
			}
			a, err := casbin.New(cfg)
			if a != nil || !errors.Is(err, casbin.ErrInvalidModel) {
				t.Fatalf("New = %v, %v; want nil, ErrInvalidModel", a, err)
			}
		})
	}
	// The fragments above do make a valid model: the failures are theirs. So does a model
	// whose deny rules override its allow rules (deny by default still).
	dir := t.TempDir()
	if _, err := casbin.New(casbin.Config{
		ModelFile:  writeFile(t, dir, "model.conf", req+pol+eff+match),
		PolicyFile: writeFile(t, dir, "policy.csv", policy),
	}); err != nil {
		t.Fatalf("control model: %v", err)
	}
	denyOverride := req + "[policy_definition]\np = sub, obj, act, eft\n" +
		"[policy_effect]\ne = some(where (p.eft == allow)) && !some(where (p.eft == deny))\n" + match
	if _, err := casbin.New(casbin.Config{
		ModelFile:  writeFile(t, dir, "deny-override.conf", denyOverride),
		PolicyFile: writeFile(t, dir, "deny-override.csv", "p, root, *, produce, allow\np, root, *, consume, deny\n"),
	}); err != nil {
		t.Fatalf("deny-override model: %v", err)
	}
}

func TestNewMissingFiles(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name    string
		cfg     casbin.Config
		wantErr error
	}{
		{name: "no policy configured", cfg: casbin.Config{}, wantErr: casbin.ErrNoPolicyFile},
		{name: "no policy, model given", cfg: casbin.Config{ModelFile: seedModel}, wantErr: casbin.ErrNoPolicyFile},
		{name: "policy file missing", cfg: casbin.Config{PolicyFile: missing}, wantErr: fs.ErrNotExist},
		{name: "model file missing", cfg: casbin.Config{ModelFile: missing, PolicyFile: seedPolicy}, wantErr: fs.ErrNotExist},
		{name: "policy is a directory", cfg: casbin.Config{PolicyFile: dir}, wantErr: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := casbin.New(tt.cfg)
			if a != nil || err == nil {
				t.Fatalf("New = %v, %v; want an error", a, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("New = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestNewRejectsInvalidConfig: a Config that cannot work is refused before any file is read,
// with an error that names the field and wraps ErrInvalidConfig.
func TestNewRejectsInvalidConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   casbin.Config
		field string
		also  error
	}{
		{"no policy file", casbin.Config{}, "PolicyFile", casbin.ErrNoPolicyFile},
		{"no policy file, model given", casbin.Config{ModelFile: seedModel}, "PolicyFile", casbin.ErrNoPolicyFile},
		{"model is the policy", casbin.Config{ModelFile: seedPolicy, PolicyFile: seedPolicy}, "ModelFile", nil},
		{"model is the policy, spelled differently", casbin.Config{ModelFile: filepath.Dir(seedPolicy) + "/./" + filepath.Base(seedPolicy), PolicyFile: seedPolicy}, "ModelFile", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := casbin.New(tt.cfg)
			if a != nil || !errors.Is(err, casbin.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field+" ") {
				t.Fatalf("New = %v, %v; want ErrInvalidConfig naming %s", a, err, tt.field)
			}
			if tt.also != nil && !errors.Is(err, tt.also) {
				t.Fatalf("New = %v; want it to wrap %v too", err, tt.also)
			}
		})
	}
}

func TestNewRefusesHugePolicy(t *testing.T) {
	line := "p, root, *, produce\n"
	huge := strings.Repeat(line, casbin.MaxPolicyBytes/len(line)+1)
	policy := writeFile(t, t.TempDir(), "policy.csv", huge)
	if _, err := casbin.New(casbin.Config{PolicyFile: policy}); !errors.Is(err, casbin.ErrInvalidPolicy) {
		t.Fatalf("New(huge policy) = %v, want ErrInvalidPolicy", err)
	}
}

func TestEmptyPolicyDeniesEverything(t *testing.T) {
	policy := writeFile(t, t.TempDir(), "policy.csv", "# nobody may do anything\n")
	a, err := casbin.New(casbin.Config{PolicyFile: policy})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"root", "nobody", "*"} {
		if err := a.Authorize(t.Context(), s, "*", "consume"); err == nil {
			t.Errorf("Authorize(%q) allowed under an empty policy", s)
		}
	}
}
