// Package transport is the wire contract of commitlog and the
// transport-neutral view of it that the rest of the system programs against.
//
// The contract is the protobuf API in proto/log/v1/log.proto (package log.v1:
// service Log, a byte-compatible superset of the seed's, and service Cluster
// for administration); its generated Go code lives in gen/log/v1 (package
// logv1) and is committed. This package adds what both wire implementations
// share, so that neither the server nor the client SDK depends on one:
//
//   - [LogService] and [ClusterService]: what a server implements, with unary
//     methods on the generated message types and small stream interfaces
//     ([ServerStream], [BidiStream]) for streaming RPCs;
//   - [Client]: the stub the SDK calls, the same shape seen from the caller;
//   - [Error] and [Code]: errors with a gRPC status code, a message and an
//     optional [NotLeader] detail, carried across both wire protocols;
//   - [Peer] and [PeerFromContext]: the verified client identity and address;
//   - [ServerConfig] with its single [Interceptor] hook, run before every Log
//     and Cluster handler, unary or streaming;
//   - [Server]: the lifecycle both server implementations share.
//
// Implementations: transport/grpc (grpc-go) and transport/connect
// (connect-go: Connect, gRPC and gRPC-Web, JSON and binary). transport/mux
// lets Raft share the API port. transport/transporttest is the conformance
// suite both implementations pass.
package transport
