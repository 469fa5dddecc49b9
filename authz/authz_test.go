package authz_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/authz"
)

func TestDeniedErrorMatchesErrDenied(t *testing.T) {
	tests := []struct {
		name      string
		err       *authz.DeniedError
		wantCause error
	}{
		{name: "no rule", err: &authz.DeniedError{Subject: "nobody", Object: authz.ObjectAll, Action: authz.ActionProduce}},
		{name: "invalid subject", err: &authz.DeniedError{Subject: "a\nb", Object: authz.ObjectAll, Action: authz.ActionProduce, Err: authz.ErrInvalidSubject}, wantCause: authz.ErrInvalidSubject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error = tt.err
			if !errors.Is(err, authz.ErrDenied) {
				t.Fatalf("errors.Is(%v, ErrDenied) = false", err)
			}
			if tt.wantCause != nil && !errors.Is(err, tt.wantCause) {
				t.Fatalf("errors.Is(%v, %v) = false", err, tt.wantCause)
			}
			if tt.wantCause == nil && errors.Is(err, authz.ErrInvalidSubject) {
				t.Fatalf("plain denial matches ErrInvalidSubject")
			}
			var de *authz.DeniedError
			if !errors.As(err, &de) || de.Subject != tt.err.Subject {
				t.Fatalf("errors.As did not recover the subject: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("message contains a raw newline (subject not quoted): %q", err.Error())
			}
		})
	}
}

func TestAllowAllAllowsEverything(t *testing.T) {
	var a authz.Authorizer = authz.AllowAll{}
	for _, subject := range []string{"", "root", "nobody", "a\nb"} {
		for _, action := range []string{authz.ActionProduce, authz.ActionConsume, authz.ActionAdmin} {
			if err := a.Authorize(context.Background(), subject, authz.ObjectAll, action); err != nil {
				t.Errorf("AllowAll.Authorize(%q, %q) = %v", subject, action, err)
			}
		}
	}
}

func TestAuthorizerFuncCallsFunction(t *testing.T) {
	var got [3]string
	f := authz.AuthorizerFunc(func(_ context.Context, s, o, a string) error {
		got = [3]string{s, o, a}
		return &authz.DeniedError{Subject: s, Object: o, Action: a}
	})
	err := f.Authorize(context.Background(), "root", authz.ObjectAll, authz.ActionAdmin)
	if !errors.Is(err, authz.ErrDenied) {
		t.Fatalf("err = %v, want ErrDenied", err)
	}
	if got != [3]string{"root", authz.ObjectAll, authz.ActionAdmin} {
		t.Fatalf("function got %q", got)
	}
}
