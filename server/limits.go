package server

import (
	"context"

	"github.com/commitlog-go/commitlog/transport"
)

// admittedKey marks a context whose call Admit already authorized, with the method's name.
type admittedKey struct{}

// admitEarly turns one authorization check into the pair of transport hooks: admit runs it as
// soon as a call's headers arrive, before the request is read or decoded (so a denied caller
// cannot make the server decode a 4 MiB batch), and intercept runs it only for calls admit did
// not see (a transport or test without the early hook).
func admitEarly(check transport.Interceptor) (admit, intercept transport.Interceptor) {
	admit = func(ctx context.Context, method string, peer transport.Peer) (context.Context, error) {
		nctx, err := check(ctx, method, peer)
		if err != nil {
			return nil, err
		}
		if nctx == nil {
			nctx = ctx
		}
		return context.WithValue(nctx, admittedKey{}, method), nil
	}
	intercept = func(ctx context.Context, method string, peer transport.Peer) (context.Context, error) {
		if m, _ := ctx.Value(admittedKey{}).(string); m == method {
			return ctx, nil
		}
		return check(ctx, method, peer)
	}
	return admit, intercept
}
