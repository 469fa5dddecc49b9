package authz_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/authz"
)

func TestValidateRequest(t *testing.T) {
	tests := []struct {
		name                    string
		subject, object, action string
		wantErr                 error // nil: valid
	}{
		{name: "seed root", subject: "root", object: "*", action: "produce"},
		{name: "commas and quotes are opaque", subject: `root, *, "produce"`, object: "*", action: "consume"},
		{name: "unicode name", subject: "zoë", object: "*", action: "consume"},
		{name: "max length", subject: strings.Repeat("a", authz.MaxFieldLen), object: "*", action: "consume"},
		{name: "empty subject", subject: "", object: "*", action: "produce", wantErr: authz.ErrInvalidSubject},
		{name: "newline", subject: "root\n", object: "*", action: "produce", wantErr: authz.ErrInvalidSubject},
		{name: "carriage return", subject: "root\r", object: "*", action: "produce", wantErr: authz.ErrInvalidSubject},
		{name: "NUL", subject: "ro\x00ot", object: "*", action: "produce", wantErr: authz.ErrInvalidSubject},
		{name: "escape", subject: "\x1b[31mroot", object: "*", action: "produce", wantErr: authz.ErrInvalidSubject},
		{name: "C1 control", subject: "root\u0085", object: "*", action: "produce", wantErr: authz.ErrInvalidSubject},
		{name: "line separator", subject: "root\u2028", object: "*", action: "produce", wantErr: authz.ErrInvalidSubject},
		{name: "bidi override", subject: "\u202etoor", object: "*", action: "produce", wantErr: authz.ErrInvalidSubject},
		{name: "invalid UTF-8", subject: "root\xff", object: "*", action: "produce", wantErr: authz.ErrInvalidSubject},
		{name: "too long", subject: strings.Repeat("a", authz.MaxFieldLen+1), object: "*", action: "produce", wantErr: authz.ErrInvalidSubject},
		{name: "empty object", subject: "root", object: "", action: "produce", wantErr: authz.ErrInvalidRequest},
		{name: "empty action", subject: "root", object: "*", action: "", wantErr: authz.ErrInvalidRequest},
		{name: "action with newline", subject: "root", object: "*", action: "produce\n", wantErr: authz.ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := authz.ValidateRequest(tt.subject, tt.object, tt.action)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ValidateRequest = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !errors.Is(err, authz.ErrDenied) {
				t.Fatalf("ValidateRequest = %v, want %v and ErrDenied", err, tt.wantErr)
			}
			if strings.ContainsAny(err.Error(), "\n\r\x00\x1b") {
				t.Fatalf("message carries raw control characters: %q", err.Error())
			}
		})
	}
}
