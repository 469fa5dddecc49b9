package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/transport"
)

// methodActions maps every API method to the authorization action it needs. A method missing
// here is denied: new RPCs must be added deliberately.
var methodActions = map[string]string{
	transport.MethodProduce:            authz.ActionProduce,
	transport.MethodProduceBatch:       authz.ActionProduce,
	transport.MethodProduceStream:      authz.ActionProduce,
	transport.MethodConsume:            authz.ActionConsume,
	transport.MethodConsumeStream:      authz.ActionConsume,
	transport.MethodGetBounds:          authz.ActionConsume,
	transport.MethodGetServers:         authz.ActionConsume, // or produce or admin: see authorizer
	transport.MethodJoin:               authz.ActionAdmin,
	transport.MethodRemoveServer:       authz.ActionAdmin,
	transport.MethodTransferLeadership: authz.ActionAdmin,
	transport.MethodCreateTopic:        authz.ActionAdmin,
	transport.MethodDeleteTopic:        authz.ActionAdmin,
	transport.MethodAlterTopicConfig:   authz.ActionAdmin,
	transport.MethodListTopics:         authz.ActionConsume,
	transport.MethodDescribeTopic:      authz.ActionConsume,
	transport.MethodInitProducer:       authz.ActionProduce,
	// Consumer groups: members consume; deleting a group or resetting its offsets administers.
	transport.MethodHeartbeat:     authz.ActionConsume,
	transport.MethodCommitOffsets: authz.ActionConsume,
	transport.MethodFetchOffsets:  authz.ActionConsume,
	transport.MethodListGroups:    authz.ActionConsume,
	transport.MethodDescribeGroup: authz.ActionConsume,
	transport.MethodListOffsets:   authz.ActionConsume,
	transport.MethodDeleteGroup:   authz.ActionAdmin,
	transport.MethodResetOffsets:  authz.ActionAdmin,
}

// topicScoped are the methods whose request names a topic (none: the default topic): the
// interceptor, which runs before the request is read, refuses a caller that may perform the
// method's action on no object at all, and the handler decides for the topic the request
// names (service.authorizeTopic). ListTopics answers with the topics the caller may describe.
var topicScoped = map[string]bool{
	transport.MethodProduce:          true,
	transport.MethodProduceBatch:     true,
	transport.MethodProduceStream:    true,
	transport.MethodConsume:          true,
	transport.MethodConsumeStream:    true,
	transport.MethodGetBounds:        true,
	transport.MethodCreateTopic:      true,
	transport.MethodDeleteTopic:      true,
	transport.MethodAlterTopicConfig: true,
	transport.MethodListTopics:       true,
	transport.MethodDescribeTopic:    true,
	// A producer ID is not a topic's: it needs produce on some topic.
	transport.MethodInitProducer: true,
	// Consumer groups: decided per topic the request names (or, for listings, that the
	// group holds offsets for: groups_service.go).
	transport.MethodHeartbeat:     true,
	transport.MethodCommitOffsets: true,
	transport.MethodFetchOffsets:  true,
	transport.MethodListGroups:    true,
	transport.MethodDescribeGroup: true,
	transport.MethodDeleteGroup:   true,
	transport.MethodResetOffsets:  true,
	transport.MethodListOffsets:   true,
}

// describeActions are the actions any of which lets a caller describe a topic and see it in
// ListTopics: reading it, writing to it (a Producer describes its topic, for its partitions and
// ID, before it sends) or administering it (whoever creates, alters and deletes it), as Kafka's
// Read, Write, Alter and Delete each imply Describe.
var describeActions = []string{authz.ActionConsume, authz.ActionProduce, authz.ActionAdmin}

// clusterInternal are the calls cluster peers make to each other on their own behalf: bounds
// and checksums (promotion of new members, the divergence check, a follower learning the
// commit point), who is in the cluster, and a topic's ID and bounds (the divergence check).
var clusterInternal = map[string]bool{transport.MethodGetBounds: true, transport.MethodGetServers: true, transport.MethodDescribeTopic: true}

// caller is whom the interceptor authorized a call for, kept in the call's context for the
// handlers' per-topic decisions.
type caller struct {
	subject string // the client (the one a peer forwards for), "" without an identity
	// internal: a cluster peer's own call (GetBounds), which reveals no records and is
	// allowed on every topic.
	internal bool
}

type callerKey struct{}

func withCaller(ctx context.Context, c caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// callerOf returns the caller the interceptor stored in ctx; without one (a call from inside
// the process), a caller without an identity, which only an authorizer allowing everyone
// (authz.AllowAll) allows anything.
func callerOf(ctx context.Context) caller {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c
}

// anyObject asks whether subject may perform action on some object, when a can say
// (authz.AnyObjectAuthorizer); otherwise lenient says whether to let the call through to the
// handler's per-topic decision (true), or to ask for authz.ObjectAll (false).
func anyObject(ctx context.Context, a authz.Authorizer, subject, action string, lenient bool) error {
	if ao, ok := a.(authz.AnyObjectAuthorizer); ok {
		return ao.AuthorizeAnyObject(ctx, subject, action)
	}
	if lenient {
		return nil
	}
	return a.Authorize(ctx, subject, authz.ObjectAll, action)
}

// authorizer returns the one interceptor both transports run before every handler: it maps the
// method to an action and asks the Authorizer about the caller's verified certificate subject.
// With requireIdentity, a caller without a verified client certificate is Unauthenticated.
// isPeer is the one rule that makes a caller a cluster peer (see peerRule); its verdict is
// stored in the context's transport.Peer (Server) for the handlers.
// authRules are the rules authorizer applies besides the Authorizer's decision.
type authRules struct {
	// requireIdentity refuses callers without a verified client certificate.
	requireIdentity bool
	// forwardOnlyPeer refuses the forwarded-for claim (a follower forwarding a client's
	// write) from a caller that is not a cluster peer; without it (everyone may do
	// everything) such a claim is ignored: the caller is its own subject, which still
	// decides who owns an idempotent producer (producer_owner.go).
	forwardOnlyPeer bool
}

func authorizer(a authz.Authorizer, rules authRules, isPeer func(transport.Peer) bool) transport.Interceptor {
	return func(ctx context.Context, method string, peer transport.Peer) (context.Context, error) {
		peer.Server = isPeer(peer)
		ctx = transport.ContextWithPeer(ctx, peer)
		action, ok := methodActions[method]
		if !ok {
			return nil, transport.Errorf(transport.PermissionDenied, "no authorization rule for %s", method)
		}
		if rules.requireIdentity && peer.Subject == "" {
			return nil, transport.Errorf(transport.Unauthenticated, "a verified client certificate is required")
		}
		subject := peer.Subject
		switch {
		case peer.ForwardedFor != "":
			// A follower forwarding a client's write: authorize the client, and trust the
			// claim only from a cluster peer (a certificate from the peer CA naming a node).
			if rules.forwardOnlyPeer && !peer.Server {
				return nil, transport.Errorf(transport.PermissionDenied, "only a cluster peer may forward requests (caller %q)", peer.Subject)
			}
			if peer.Server {
				// Without forwardOnlyPeer (everyone may do everything) another caller's claim
				// is ignored: the subject still decides who owns an idempotent producer.
				subject = peer.ForwardedFor
			}
		case peer.Server && clusterInternal[method]:
			// Peers ask each other how far they have applied (promotion of new members) and
			// who is in the cluster; these reveal no records.
			return withCaller(ctx, caller{subject: subject, internal: true}), nil
		}
		ctx = withCaller(ctx, caller{subject: subject})
		if method == transport.MethodGetServers {
			// Finding the leader is the first thing every client does: any identity that may
			// produce, consume or administer (any topic) may list the servers.
			var err error
			for _, act := range []string{authz.ActionProduce, authz.ActionConsume, authz.ActionAdmin} {
				if err = anyObject(ctx, a, subject, act, false); err == nil {
					return ctx, nil
				}
			}
			if de := (*authz.DeniedError)(nil); errors.As(err, &de) && de.Err == nil {
				// The last refusal names admin alone, which sent a denied client (the seed's
				// nobody, trying to consume) looking for an admin rule: name all three.
				object := fmt.Sprintf("object %q", de.Object)
				if _, ok := a.(authz.AnyObjectAuthorizer); ok {
					object = "any object"
				}
				err = fmt.Errorf("subject %q may not produce, consume or admin %s, one of which listing the servers (every client's first call) needs: %w", subject, object, authz.ErrDenied)
			}
			return nil, denied(err)
		}
		if method == transport.MethodDescribeTopic || method == transport.MethodListTopics {
			// Who may consume, produce to or administer some topic may describe and list
			// topics (describeActions); the handler decides for each topic.
			var first error
			for _, act := range describeActions {
				err := anyObject(ctx, a, subject, act, true)
				if err == nil {
					return ctx, nil
				}
				if first == nil {
					first = err
				}
			}
			return nil, denied(first)
		}
		if topicScoped[method] {
			// The topic is in the request, not read yet: the handler decides for it.
			if err := anyObject(ctx, a, subject, action, method != transport.MethodInitProducer); err != nil {
				return nil, denied(err)
			}
			return ctx, nil
		}
		// The cluster itself (servers, leadership): object "*".
		if err := a.Authorize(ctx, subject, authz.ObjectAll, action); err != nil {
			return nil, denied(err)
		}
		return ctx, nil
	}
}

// authorizeTopic refuses (PermissionDenied) a call whose caller may not perform action on topic
// ("" is the default topic, authz.ObjectDefaultTopic; a rule for "*" allows every topic, see
// authz.AuthorizeTopic). A cluster peer's own internal call is allowed.
func (s *service) authorizeTopic(ctx context.Context, topic, action string) error {
	c := callerOf(ctx)
	if c.internal {
		return nil
	}
	a := s.acl
	if a == nil {
		a = authz.AllowAll{}
	}
	if err := authz.AuthorizeTopic(ctx, a, c.subject, topic, action); err != nil {
		return denied(err)
	}
	return nil
}

// authorizeDescribe refuses (PermissionDenied, naming consume) a call whose caller may not
// describe topic: one that may perform none of describeActions on it.
func (s *service) authorizeDescribe(ctx context.Context, topic string) error {
	var first error
	for _, act := range describeActions {
		err := s.authorizeTopic(ctx, topic, act)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// authorizeGroup refuses (PermissionDenied, naming the group's object "group:<name>") a call
// whose caller may not perform action on consumer group group, when the policy makes groups
// objects (authz.GroupAuthorizer: it names a group object; a rule for "*" allows every group).
// Otherwise, and for a cluster peer's own internal call, it allows: group calls are then decided
// by their topics alone. With group checks on, an invalid group name is refused as one
// (InvalidArgument) before it is asked about.
func (s *service) authorizeGroup(ctx context.Context, group, action string) error {
	c := callerOf(ctx)
	if c.internal || s.acl == nil || !authz.GroupChecks(s.acl) {
		return nil
	}
	if err := fsm.ValidateGroupName(group); err != nil {
		return toWire(err)
	}
	if err := authz.AuthorizeGroup(ctx, s.acl, c.subject, group, action); err != nil {
		return denied(err)
	}
	return nil
}

// logGroupChecks says whether the loaded policy makes consumer groups objects of their own, at
// start and after every reload of the policy.
func logGroupChecks(logger *slog.Logger, a authz.Authorizer) {
	if _, ok := a.(authz.GroupAuthorizer); !ok {
		return
	}
	if authz.GroupChecks(a) {
		logger.Info("ACL: group authorization on: the policy names group:<name> objects; every consumer group call also needs consume (admin to reset offsets or delete) on its group")
		return
	}
	logger.Info("ACL: group authorization off: the policy names no group:<name> object; consumer group calls are decided by their topics alone")
}

// denied maps an authorization failure to its wire error.
func denied(err error) error {
	if errors.Is(err, authz.ErrDenied) || errors.Is(err, authz.ErrInvalidSubject) {
		return transport.NewError(transport.PermissionDenied, err)
	}
	return transport.NewError(transport.Internal, err)
}
