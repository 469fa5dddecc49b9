package client

import (
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
)

// NewTransportClient returns the constructor of transport clients for the
// transport named (TransportGRPC, or TransportConnect for any other name): the
// one place that maps a transport flag to an implementation.
func NewTransportClient(name string) transport.NewClientFunc {
	if name == TransportGRPC {
		return tgrpc.NewClient
	}
	return tconnect.NewClient
}

// dialer returns the function that opens a transport client to one server,
// for the transport and TLS settings of o.
func dialer(o *options) dialFunc {
	newClient := NewTransportClient(o.transport)
	return func(addr string) (transport.Client, error) {
		// One tls.Config per connection: net/http may edit the one it is
		// given (NextProtos), so sharing one between transports races.
		cfg := transport.ClientConfig{TLS: o.tls.Clone(), MaxMessageBytes: o.maxMessageBytes}
		return newClient(addr, cfg)
	}
}
