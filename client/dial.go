package client

import (
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
)

// dialer returns the function that opens a transport client to one server,
// for the transport and TLS settings of o.
func dialer(o *options) dialFunc {
	newClient := transport.NewClientFunc(tconnect.NewClient)
	if o.transport == TransportGRPC {
		newClient = tgrpc.NewClient
	}
	return func(addr string) (transport.Client, error) {
		// One tls.Config per connection: net/http may edit the one it is
		// given (NextProtos), so sharing one between transports races.
		cfg := transport.ClientConfig{TLS: o.tls.Clone(), MaxMessageBytes: o.maxMessageBytes}
		return newClient(addr, cfg)
	}
}
