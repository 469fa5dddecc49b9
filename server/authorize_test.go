package server

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/transport"
)

// decide returns what authorizes a call without a topic: the interceptor, then (for a method
// whose request names a topic) the handler's decision for the default topic.
func decide(a authz.Authorizer, rules authRules, isPeer func(transport.Peer) bool) transport.Interceptor {
	intercept := authorizer(a, rules, isPeer)
	svc := &service{acl: a}
	return func(ctx context.Context, method string, peer transport.Peer) (context.Context, error) {
		ctx, err := intercept(ctx, method, peer)
		if err != nil || !topicScoped[method] || method == transport.MethodListTopics || method == transport.MethodInitProducer {
			return ctx, err
		}
		return ctx, svc.authorizeTopic(ctx, "", methodActions[method])
	}
}

// anyObjectAuthorizer gives a fake Authorizer AuthorizeAnyObject, over a fixed list of objects.
type anyObjectAuthorizer struct {
	authz.Authorizer
	objects []string
}

func (a anyObjectAuthorizer) AuthorizeAnyObject(ctx context.Context, subject, action string) error {
	var err error
	for _, o := range a.objects {
		if err = a.Authorize(ctx, subject, o, action); err == nil {
			return nil
		}
	}
	return err
}

func anyObjectOf(a authz.Authorizer, objects ...string) authz.AnyObjectAuthorizer {
	return anyObjectAuthorizer{Authorizer: a, objects: append([]string{authz.ObjectAll}, objects...)}
}

func TestAuthorizerRules(t *testing.T) {
	// policy: writer may produce; reader may consume; root may both.
	policy := authz.AuthorizerFunc(func(_ context.Context, subject, object, action string) error {
		allowed := map[string][]string{"writer": {"produce"}, "reader": {"consume"}, "root": {"produce", "consume"}}
		for _, a := range allowed[subject] {
			if a == action && object == authz.ObjectAll {
				return nil
			}
		}
		return &authz.DeniedError{Subject: subject, Object: object, Action: action}
	})
	// The transport's Server flag is ignored: the rule decides (here: subject "server").
	intercept := decide(anyObjectOf(policy), authRules{requireIdentity: true, forwardOnlyPeer: true}, func(p transport.Peer) bool { return p.Subject == "server" })
	tests := []struct {
		name   string
		method string
		peer   transport.Peer
		want   transport.Code
	}{
		{"writer produces", transport.MethodProduce, transport.Peer{Subject: "writer"}, transport.OK},
		{"writer may not consume", transport.MethodConsume, transport.Peer{Subject: "writer"}, transport.PermissionDenied},
		{"writer may find the leader", transport.MethodGetServers, transport.Peer{Subject: "writer"}, transport.OK},
		{"reader may find the leader", transport.MethodGetServers, transport.Peer{Subject: "reader"}, transport.OK},
		{"a stranger may not list servers", transport.MethodGetServers, transport.Peer{Subject: "stranger"}, transport.PermissionDenied},
		{"no identity", transport.MethodConsume, transport.Peer{}, transport.Unauthenticated},
		{"nobody is an admin", transport.MethodRemoveServer, transport.Peer{Subject: "root"}, transport.PermissionDenied},
		{"unknown method", "/log.v1.Log/Unknown", transport.Peer{Subject: "root"}, transport.PermissionDenied},
		{"peer forwards for root", transport.MethodProduceBatch, transport.Peer{Subject: "server", Server: true, ForwardedFor: "root"}, transport.OK},
		{"peer forwards for reader", transport.MethodProduceBatch, transport.Peer{Subject: "server", Server: true, ForwardedFor: "reader"}, transport.PermissionDenied},
		{"client forges forwarding", transport.MethodProduceBatch, transport.Peer{Subject: "reader", ForwardedFor: "root"}, transport.PermissionDenied},
		{"a Server flag from the transport proves nothing", transport.MethodProduceBatch, transport.Peer{Subject: "reader", Server: true, ForwardedFor: "root"}, transport.PermissionDenied},
		{"peer asks bounds", transport.MethodGetBounds, transport.Peer{Subject: "server", Server: true}, transport.OK},
		{"peer may not produce for itself", transport.MethodProduce, transport.Peer{Subject: "server", Server: true}, transport.PermissionDenied},
		{"peer may not administer", transport.MethodTransferLeadership, transport.Peer{Subject: "server", Server: true}, transport.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := intercept(context.Background(), tt.method, tt.peer)
			if got := transport.CodeOf(err); got != tt.want {
				t.Fatalf("%s by %+v: %v (code %v), want %v", tt.method, tt.peer, err, got, tt.want)
			}
		})
	}
}

// TestCustomAuthorizerRules: a Config.Authorizer decides for callers without a certificate too
// (subject ""), and a forwarded-for claim still counts only from a peer.
func TestCustomAuthorizerRules(t *testing.T) {
	// Anyone may consume; only root may produce.
	policy := authz.AuthorizerFunc(func(_ context.Context, subject, object, action string) error {
		if action == authz.ActionConsume || subject == "root" {
			return nil
		}
		return &authz.DeniedError{Subject: subject, Object: object, Action: action}
	})
	intercept := decide(policy, authRules{forwardOnlyPeer: true}, func(p transport.Peer) bool { return p.Subject == "server" })
	for _, tt := range []struct {
		name   string
		method string
		peer   transport.Peer
		want   transport.Code
	}{
		{"anonymous consumes", transport.MethodConsume, transport.Peer{}, transport.OK},
		{"anonymous may not produce", transport.MethodProduce, transport.Peer{}, transport.PermissionDenied},
		{"anonymous forges forwarding", transport.MethodProduceBatch, transport.Peer{ForwardedFor: "root"}, transport.PermissionDenied},
		{"peer forwards for root", transport.MethodProduceBatch, transport.Peer{Subject: "server", Server: true, ForwardedFor: "root"}, transport.OK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := intercept(context.Background(), tt.method, tt.peer)
			if got := transport.CodeOf(err); got != tt.want {
				t.Fatalf("%s by %+v: %v (code %v), want %v", tt.method, tt.peer, err, got, tt.want)
			}
		})
	}
}

// TestGetServersDeniedNamesEveryAction: a client no rule allows anything is refused at its first
// call, GetServers, with a message naming the three actions any of which would do; it named the
// last one asked, admin, alone ("subject "nobody" may not "admin" object "*""), which sent the
// seed's nobody, trying to consume, looking for an admin rule.
func TestGetServersDeniedNamesEveryAction(t *testing.T) {
	policy := authz.AuthorizerFunc(func(_ context.Context, subject, object, action string) error {
		if subject == "root" {
			return nil
		}
		return &authz.DeniedError{Subject: subject, Object: object, Action: action}
	})
	for name, tc := range map[string]struct {
		a    authz.Authorizer
		want string
	}{
		"any-object": {anyObjectOf(policy), `subject "nobody" may not produce, consume or admin any object`},
		// A plain Authorizer is asked about "*" alone.
		"plain": {policy, `subject "nobody" may not produce, consume or admin object "*"`},
	} {
		a := tc.a
		t.Run(name, func(t *testing.T) {
			intercept := authorizer(a, authRules{requireIdentity: true, forwardOnlyPeer: true}, func(transport.Peer) bool { return false })
			_, err := intercept(context.Background(), transport.MethodGetServers, transport.Peer{Subject: "nobody"})
			if got := transport.CodeOf(err); got != transport.PermissionDenied {
				t.Fatalf("GetServers by nobody: %v (code %v), want PermissionDenied", err, got)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) {
				t.Fatalf("GetServers by nobody: %q does not name the three actions (%q)", msg, tc.want)
			}
			if !errors.Is(err, authz.ErrDenied) {
				t.Fatalf("GetServers by nobody: %v does not match authz.ErrDenied", err)
			}
		})
	}
}
