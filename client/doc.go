// Package client is the Go SDK of commitlog: it appends records to a
// commitlog cluster and reads them back, over Connect (default) or gRPC.
//
// # Finding the leader
//
// New takes the API addresses of one or more servers (seeds) and asks them
// for the cluster's server list (GetServers). Each Client keeps its own view
// of its own cluster: the servers, the leader's address, and one pooled
// connection per address, closed by Close. Writes (Produce, ProduceBatch,
// the Producer, admin calls) go straight to the leader. A server that is not
// the leader answers FailedPrecondition with a NotLeader detail naming the
// leader's id and API address; the client switches to that leader at once,
// without a backoff or a refresh. After other failures, and every
// WithRefreshInterval, the client asks the cluster for its server list
// again.
//
// # Reads
//
// Consume, Bounds and Stream go to the leader by default (ReadLeader: reads
// see every acknowledged write). WithReadPolicy(ReadFollowers) or ReadAny
// spreads them round-robin over replicas; a follower serves committed
// records only and waits for one it has not applied yet, up to the server's
// --max-consume-wait (1 s by default), then answers Unavailable and the read
// moves on to the next server.
// WithLinearizableReads makes Consume and Bounds linearizable on the leader.
// A read that fails is retried on the next replica. A Producer describes its
// topics on the leader whatever the policy (see Producer).
//
// # Retries and errors
//
// The client retries only what is safe: reads, and writes that the cluster
// refused before proposing them (NotLeader, no leader during an election,
// or a connection that could not be made). A write whose outcome is unknown
// (leadership lost after proposing, a timeout, a connection broken
// mid-request, the caller's context ending mid-request, once the request was
// sent: ending while its connection was still being set up is ErrUnavailable) is never retried:
// it fails with an error wrapping ErrOutcomeUnknown, because a retry could
// append the record twice (the idempotent Producer, below, is the exception:
// its retries cannot). Every error wraps one of the package's sentinel
// errors (ErrOutOfRange, ErrOutcomeUnknown, ErrUnavailable, ErrNotLeader via
// *NotLeaderError, ErrClosed, …), the server's *transport.Error, or, for a
// call whose context had ended before it sent anything, that context's error
// (context.Canceled, context.DeadlineExceeded), so test them with errors.Is
// and transport.CodeOf.
//
// # Topics and partitions
//
// A topic is a set of partitions, each one dense log with its own offsets.
// Calls that name no topic mean DefaultTopic, partition 0: the single log
// seed clients see. ProduceRecord, ProduceRecords, ConsumePartition,
// StreamPartition and PartitionBounds name a partition; CreateTopic,
// DeleteTopic, AlterTopic, ListTopics and DescribeTopic administer topics and
// fail with ErrTopicsUnsupported against a server older than topics.
// KeyPartition maps a key to a partition exactly as Kafka's clients do
// (murmur2), and DefaultPartitioner adds sticky placement for records without
// a key.
//
// # Batching and streaming
//
// ProduceBatch appends several records atomically in one request. A Producer
// (Client.NewProducer) batches records given to Send or SendRecord per
// partition, by count, bytes and linger time, places them with a Partitioner
// (DefaultPartitioner: Kafka's murmur2 of the key, sticky placement without a
// key), and delivers each record's offset through a Future or a callback.
// Stream returns an iter.Seq2 that reads from an offset and then tails the
// log, resuming after broken streams and leader changes at the next offset,
// without duplicates or gaps.
//
// # The idempotent producer
//
// A Producer is idempotent by default: it obtains a producer ID and epoch
// (InitProducer) and sends each batch with its sequence numbers, which every
// replica checks. A batch whose outcome is unknown is therefore retried
// automatically, until acknowledged or until the delivery timeout
// (ProducerDeliveryTimeout, 2 minutes), and is never stored twice; a
// partition's records are stored in Send order. A record whose delivery
// timeout passes while its outcome is unknown fails with ErrDeliveryTimeout
// and ErrOutcomeUnknown (stored at most once); so does, with its own error,
// one whose retry after an unknown outcome failed for good (refused, the
// client closed, the producer fenced). ErrProducerFenced says another
// instance took over the producer ID. ProducerIdempotence(false) turns this
// off: then a batch whose outcome is unknown fails with ErrOutcomeUnknown and
// is never retried. Two Producers are two producers: the same value sent
// through both is stored twice. A Producer pins the ID each topic has when
// it first learns it: once the topic is deleted and created again under its
// name, every record sent to it fails with ErrUnknownTopic, and none, not
// even a retry, lands in the new topic.
package client
