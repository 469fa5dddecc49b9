package authz_test

import (
	"context"
	"errors"
	"testing"

	"github.com/commitlog-go/commitlog/authz"
)

// rules is a fake Authorizer: subject -> object -> actions allowed, literal (no wildcards), and
// it records the objects it was asked for.
type rules struct {
	allow map[string]map[string][]string
	asked []string
}

func (r *rules) Authorize(_ context.Context, subject, object, action string) error {
	r.asked = append(r.asked, object)
	if err := authz.ValidateRequest(subject, object, action); err != nil {
		return err
	}
	for _, a := range r.allow[subject][object] {
		if a == action {
			return nil
		}
	}
	return &authz.DeniedError{Subject: subject, Object: object, Action: action}
}

func TestAuthorizeTopic(t *testing.T) {
	policy := map[string]map[string][]string{
		"alice": {"orders": {authz.ActionProduce}},
		"root":  {authz.ObjectAll: {authz.ActionProduce, authz.ActionConsume}},
		"seed":  {authz.ObjectDefaultTopic: {authz.ActionConsume}},
	}
	for _, tt := range []struct {
		subject, topic, action string
		allowed                bool
		asked                  []string
	}{
		{"alice", "orders", authz.ActionProduce, true, []string{"orders"}},
		{"alice", "payments", authz.ActionProduce, false, []string{"payments", authz.ObjectAll}},
		{"alice", "orders", authz.ActionConsume, false, []string{"orders", authz.ObjectAll}},
		{"root", "orders", authz.ActionProduce, true, []string{"orders", authz.ObjectAll}},
		{"root", "", authz.ActionConsume, true, []string{authz.ObjectDefaultTopic, authz.ObjectAll}},
		{"root", "orders", authz.ActionAdmin, false, []string{"orders", authz.ObjectAll}},
		{"seed", "", authz.ActionConsume, true, []string{authz.ObjectDefaultTopic}},
		{"seed", authz.ObjectDefaultTopic, authz.ActionConsume, true, []string{authz.ObjectDefaultTopic}},
		{"seed", "orders", authz.ActionConsume, false, []string{"orders", authz.ObjectAll}},
		{"bad\nsubject", "orders", authz.ActionConsume, false, []string{"orders"}}, // no second try
	} {
		r := &rules{allow: policy}
		err := authz.AuthorizeTopic(context.Background(), r, tt.subject, tt.topic, tt.action)
		if tt.allowed != (err == nil) {
			t.Errorf("AuthorizeTopic(%q, %q, %q) = %v, want allowed=%v", tt.subject, tt.topic, tt.action, err, tt.allowed)
		}
		if err != nil {
			de, ok := errors.AsType[*authz.DeniedError](err)
			want := tt.topic
			if want == "" {
				want = authz.ObjectDefaultTopic
			}
			if !ok || !errors.Is(err, authz.ErrDenied) || de.Object != want {
				t.Errorf("AuthorizeTopic(%q, %q, %q) = %v, want a denial naming object %q", tt.subject, tt.topic, tt.action, err, want)
			}
		}
		if len(r.asked) != len(tt.asked) || (len(r.asked) > 0 && r.asked[0] != tt.asked[0]) || (len(r.asked) > 1 && r.asked[1] != tt.asked[1]) {
			t.Errorf("AuthorizeTopic(%q, %q, %q) asked for %q, want %q", tt.subject, tt.topic, tt.action, r.asked, tt.asked)
		}
	}
}

// TestAuthorizeTopicFailsClosed: a failure to decide is returned, not retried as a denial.
func TestAuthorizeTopicFailsClosed(t *testing.T) {
	boom := errors.New("policy store unavailable")
	calls := 0
	a := authz.AuthorizerFunc(func(context.Context, string, string, string) error { calls++; return boom })
	if err := authz.AuthorizeTopic(context.Background(), a, "root", "orders", authz.ActionProduce); !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("AuthorizeTopic = %v after %d calls, want the authorizer's error after 1", err, calls)
	}
}

func TestAllowAllAnyObject(t *testing.T) {
	var a authz.AnyObjectAuthorizer = authz.AllowAll{}
	if err := a.AuthorizeAnyObject(context.Background(), "", authz.ActionAdmin); err != nil {
		t.Fatal(err)
	}
}
