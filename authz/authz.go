// Package authz is the authorization contract of commitlog: given a verified
// client identity (the subject), a resource (the object) and an operation (the
// action), an Authorizer says yes (nil) or no (an error).
//
// The server calls Authorize once per request, after the transport has
// authenticated the client (for mTLS, the subject is the common name of the
// verified client certificate). Decisions are deny by default: every
// implementation must return a non-nil error unless a rule explicitly allows
// the request, and must fail closed on any internal error.
//
// Implementations live in subpackages named after the technology they wrap;
// authz/casbin is the production one. AllowAll exists for local plaintext use.
//
// This package imports nothing from the rest of the repository.
package authz

import (
	"context"
	"errors"
	"fmt"
)

// Actions understood by commitlog servers. They are part of the policy file
// format: renaming one breaks every deployed policy.
const (
	// ActionProduce allows appending records (Produce, ProduceStream and
	// batched produce).
	ActionProduce = "produce"
	// ActionConsume allows reading records and log bounds (Consume,
	// ConsumeStream).
	ActionConsume = "consume"
	// ActionAdmin allows cluster administration (remove a server, transfer
	// leadership) on ObjectAll, and topic administration (create, delete,
	// alter) on a topic.
	ActionAdmin = "admin"
)

// Objects. The object of a request is the name of the topic it reads,
// writes or administers; requests that name no topic (every request of the
// seed's clients) are for the default topic, ObjectDefaultTopic. A consumer
// group is an object too, GroupObject (see GroupAuthorizer).
const (
	// ObjectAll is the object that stands for every topic. It is the object
	// the seed project used ("*") for its single log, so the seed's policy
	// lines such as "p, root, *, produce" keep working unchanged: a subject
	// allowed an action on ObjectAll is allowed it on every topic (see
	// AuthorizeTopic).
	ObjectAll = "*"
	// ObjectDefaultTopic is the object of requests that name no topic: the
	// default topic, the single log of servers before topics and of the seed.
	ObjectDefaultTopic = "default"
)

// Sentinel errors. Test for them with errors.Is.
var (
	// ErrDenied means the request is not allowed. Every denial returned by an
	// Authorizer matches it, whatever the reason; the server maps it to the
	// PermissionDenied status code. The concrete error is a *DeniedError.
	ErrDenied = errors.New("authz: permission denied")

	// ErrInvalidSubject means the subject is unusable as an identity: empty,
	// not valid UTF-8, too long, or containing control characters. Errors
	// that match it also match ErrDenied.
	ErrInvalidSubject = errors.New("authz: invalid subject")

	// ErrInvalidRequest means the object or action is empty, not valid UTF-8,
	// too long, or contains control characters. Errors that match it also
	// match ErrDenied.
	ErrInvalidRequest = errors.New("authz: invalid object or action")
)

// Authorizer decides whether subject may perform action on object.
//
// Authorize returns nil when the request is allowed. Otherwise it returns a
// non-nil error: one matching ErrDenied when the policy (or input validation)
// refuses the request, the context's error (wrapped) when ctx is done, or
// another error when the decision could not be made (which must be treated
// as a refusal). Implementations must be safe for concurrent use by multiple
// goroutines and must not retain ctx.
type Authorizer interface {
	Authorize(ctx context.Context, subject, object, action string) error
}

// AnyObjectAuthorizer is an optional interface of an Authorizer: it says
// whether subject may perform action on some object, without naming one. A
// server uses it where a request names no object of its own (listing topics:
// the list is then filtered with Authorize per topic) and to refuse a caller
// that may do an action nowhere before reading its request.
//
// AuthorizeAnyObject returns nil when some object (ObjectAll included) is
// allowed, and otherwise errors as Authorize does (a *DeniedError, with
// Object ObjectAll, matching ErrDenied when nothing is allowed). Safe for
// concurrent use.
type AnyObjectAuthorizer interface {
	Authorizer
	AuthorizeAnyObject(ctx context.Context, subject, action string) error
}

// AuthorizeTopic decides whether subject may perform action on topic ("" is
// the default topic, ObjectDefaultTopic): allowed when a asks for the topic's
// name, or for ObjectAll, which stands for every topic whatever the model
// (under the seed's model, where "*" in a rule is literal, the seed's
// "p, root, *, produce" still allows root every topic). The topic is asked
// first; ObjectAll only when the topic is refused by the policy.
//
// It returns nil or the error of the topic's decision (a *DeniedError naming
// the topic when both are refused; a failure to decide is returned as is and
// must be treated as a refusal). Safe for concurrent use if a is.
func AuthorizeTopic(ctx context.Context, a Authorizer, subject, topic, action string) error {
	if topic == "" {
		topic = ObjectDefaultTopic
	}
	err := a.Authorize(ctx, subject, topic, action)
	if err == nil || topic == ObjectAll || !errors.Is(err, ErrDenied) {
		return err
	}
	if errors.Is(err, ErrInvalidSubject) {
		return err // no object can help
	}
	if a.Authorize(ctx, subject, ObjectAll, action) == nil {
		return nil
	}
	return err
}

// AuthorizerFunc adapts an ordinary function to the Authorizer interface, for
// tests and for composing authorizers.
type AuthorizerFunc func(ctx context.Context, subject, object, action string) error

// Authorize calls f(ctx, subject, object, action).
func (f AuthorizerFunc) Authorize(ctx context.Context, subject, object, action string) error {
	return f(ctx, subject, object, action)
}

// AllowAll is an Authorizer that allows every request, including requests
// with an empty subject. It is meant ONLY for the zero-configuration local
// mode: a server listening in plaintext on loopback, where no client identity
// exists. Never use it on a server reachable by untrusted clients. It is safe
// for concurrent use.
type AllowAll struct{}

// Authorize always returns nil.
func (AllowAll) Authorize(context.Context, string, string, string) error { return nil }

// AuthorizeAnyObject always returns nil.
func (AllowAll) AuthorizeAnyObject(context.Context, string, string) error { return nil }

var _ AnyObjectAuthorizer = AllowAll{}

// DeniedError is the error returned when a request is refused. It matches
// ErrDenied (errors.Is) and unwraps to the reason, if any (for example
// ErrInvalidSubject).
type DeniedError struct {
	Subject string // the identity that asked
	Object  string // the resource it asked for
	Action  string // the operation it asked to perform
	// Err is the reason when the refusal is not a plain "no rule allows
	// this" (for example ErrInvalidSubject); nil otherwise.
	Err error
}

// Error describes the refusal. Subject, object and action are quoted, so a
// hostile subject cannot forge log lines.
func (e *DeniedError) Error() string {
	msg := fmt.Sprintf("authz: permission denied: subject %q may not %q object %q", e.Subject, e.Action, e.Object)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is reports whether target is ErrDenied.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// Unwrap returns the reason for the refusal, or nil.
func (e *DeniedError) Unwrap() error { return e.Err }
