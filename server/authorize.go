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
	transport.MethodGetServers:         authz.ActionConsume,
	transport.MethodJoin:               authz.ActionAdmin,
	transport.MethodRemoveServer:       authz.ActionAdmin,
	transport.MethodTransferLeadership: authz.ActionAdmin,
}

// authorizer returns the one interceptor both transports run before every handler: it maps the
// method to an action and asks the Authorizer about the caller's verified certificate subject.
// With requireIdentity, a caller without a verified client certificate is Unauthenticated.
func authorizer(a authz.Authorizer, requireIdentity bool) transport.Interceptor {
	return func(ctx context.Context, method string, peer transport.Peer) (context.Context, error) {
		action, ok := methodActions[method]
		if !ok {
			return nil, transport.Errorf(transport.PermissionDenied, "no authorization rule for %s", method)
		}
		if requireIdentity && peer.Subject == "" {
			return nil, transport.Errorf(transport.Unauthenticated, "a verified client certificate is required")
		}
		if err := a.Authorize(ctx, peer.Subject, authz.ObjectAll, action); err != nil {
			if errors.Is(err, authz.ErrDenied) || errors.Is(err, authz.ErrInvalidSubject) {
				return nil, transport.NewError(transport.PermissionDenied, err)
			}
			return nil, transport.NewError(transport.Internal, err)
		}
		return ctx, nil
	}
}
