package server

import (
	"context"
	"errors"

	"github.com/commitlog-go/commitlog/authz"
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

// clusterInternal are the calls cluster peers make to each other on their own behalf.
var clusterInternal = map[string]bool{transport.MethodGetBounds: true, transport.MethodGetServers: true}

// authorizer returns the one interceptor both transports run before every handler: it maps the
// method to an action and asks the Authorizer about the caller's verified certificate subject.
// With requireIdentity, a caller without a verified client certificate is Unauthenticated.
// isPeer is the one rule that makes a caller a cluster peer (see peerRule); its verdict is
// stored in the context's transport.Peer (Server) for the handlers.
// authRules are the rules authorizer applies besides the Authorizer's decision.
type authRules struct {
	// requireIdentity refuses callers without a verified client certificate.
	requireIdentity bool
	// forwardOnlyPeer trusts the forwarded-for claim (a follower forwarding a client's
	// write) only from a cluster peer; without it (everyone may do everything) the claim
	// changes nothing that matters.
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
			subject = peer.ForwardedFor
		case peer.Server && clusterInternal[method]:
			// Peers ask each other how far they have applied (promotion of new members) and
			// who is in the cluster; these reveal no records.
			return ctx, nil
		}
		if method == transport.MethodGetServers {
			// Finding the leader is the first thing every client does: any identity that may
			// produce, consume or administer may list the servers.
			var err error
			for _, act := range []string{authz.ActionProduce, authz.ActionConsume, authz.ActionAdmin} {
				if err = a.Authorize(ctx, subject, authz.ObjectAll, act); err == nil {
					return ctx, nil
				}
			}
			return nil, denied(err)
		}
		if err := a.Authorize(ctx, subject, authz.ObjectAll, action); err != nil {
			return nil, denied(err)
		}
		return ctx, nil
	}
}

// denied maps an authorization failure to its wire error.
func denied(err error) error {
	if errors.Is(err, authz.ErrDenied) || errors.Is(err, authz.ErrInvalidSubject) {
		return transport.NewError(transport.PermissionDenied, err)
	}
	return transport.NewError(transport.Internal, err)
}
