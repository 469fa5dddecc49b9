// Package fsm is commitlog's replicated state machine: it applies committed append commands to a
// storage.Log and serves the records it holds. It implements consensus.StateMachine and
// consensus.SnapshotSource.
//
// # Commands
//
// A command is an append batch — one or many records (a value and the wire Record's uint32
// type), stamped with the proposer's clock — or a retain command (a new first offset),
// encoded in a versioned, CRC-32C-checksummed format (see format.go). Propose encodes,
// proposes and returns the typed result of an append; ProposeRetention of a retain command.
// Apply gives the records of one entry consecutive, dense offsets in the log — never Raft
// indices — with one atomic storage.Log.Append, so a batch gets all its offsets or none. Apply
// coalesces the batches of consecutive entries into one Append (up to Config.MaxAppendBytes)
// and returns, per entry, an AppendResult, a RetainResult or an error value.
//
// Decoding enforces the format's hard bounds (MaxRecordValueBytes, MaxBatchRecords,
// MaxCommandBytes), never the node's configured Limits: every node must accept or reject the
// same committed entry, whatever its configuration. Limits bound what Propose proposes on the
// leader; a node that does not lead answers a batch above its own Limits (within the hard
// bounds) with consensus.NotLeaderError, so that it is forwarded and the leader's Limits
// decide. A storage.Log under an FSM must accept records of MaxStoredRecordBytes.
//
// # Retention
//
// Retention is a replicated decision. The leader evaluates a RetentionPolicy on its log
// (RetentionPoint: sizes from the envelopes' byte positions, ages from the timestamps stored
// in the records, never file times) and proposes the new first offset (ProposeRetention).
// Every replica applying the retain command serves nothing below it (Bounds, Read and Records
// answer storage.ErrOutOfRange), whatever its storage still holds below it: storage.Log
// drops whole segments only (Compact, also called periodically by the server). The last
// record is always kept. The first offset is in snapshot manifests; after a restart it comes
// back from the snapshot and the replayed retain commands.
//
// # Stored records and replay
//
// Each stored record is an envelope around the value: format version, the Raft index and term
// of the entry that wrote it, its byte position in the log (the stored size of every record
// before it, the same on every node), the record type, its timestamp (the command's, never
// below the previous record's, so the same on every node and non-decreasing), the value. When the FSM is created it reads the
// last stored record to learn the last Raft index it applied; Apply skips every entry at or
// below it (it returns ErrAlreadyApplied for them). After a restart, the consensus replays its
// log from its latest snapshot: the entries already in the log are skipped, the ones lost with
// unsynced writes are applied again, so nothing is duplicated and nothing is missing. (A power
// failure can leave holes anywhere in storage/segment's unsynced tail; its recovery cuts the log
// at the first one, beyond its durable watermark, so the log still ends with the last entry
// actually stored.) The
// storage.Log therefore need not fsync on every apply; Raft's log is the durable record.
// (Entries that produced no record — rejected commands — are re-decoded and rejected again.)
// Retention therefore keeps at least the last record: an emptied log forgets what it applied.
//
// # Failure
//
// A committed entry the FSM cannot store — a storage failure, or a storage.Log that refuses
// the entry as too large — stops it: skipping the entry would shift every later offset on
// this node only. The first such error becomes sticky (ErrFailed wraps it): every later Apply
// result, Snapshot and Restore returns it, Err reports it, Failed is closed and the error is
// logged. The FSM keeps serving the records it stored before the failure, and nothing at or
// past it: Bounds' next stays there, Read and Records answer ErrFailed (at once, and waiting
// readers are woken). While this node leads, Propose and the Machine's proposals refuse every
// later command before proposing it (ErrStopped): committed, it would fail here. Restarting the
// node (after fixing the cause) replays what was lost.
//
// # Snapshots
//
// Snapshots do not copy the log. Snapshot returns a small manifest: the applied Raft index and
// term, the log's bounds and replicated first offset, its byte position at next and the
// checksum of its last record (format in snapshot_format.go).
// Persist syncs the log before writing the manifest, so a manifest never refers to records a
// crash could lose. SnapshotData streams the records [lowest, manifest next) of the local log,
// each framed with its offset, length and CRC-32C, lazily: nothing is read from the log until
// the stream is read. SnapshotDataSize (consensus.SnapshotSizer) gives the stream's exact
// length from the byte positions, reading one record, so the consensus can announce a
// snapshot without reading it.
//
// Restore keeps the local log as it is, and reads nothing from the data stream, when the log
// already holds every record the manifest covers (as when a node restores its own snapshot at
// startup); it checks that the log's record at manifest next-1 is the one the manifest names.
// Otherwise it ingests the stream, which starts at the manifest's first offset: records the
// log already has are skipped (the last of them is
// compared with the stream), a log that does not overlap the stream is Reset to its first
// offset, every frame's checksum and envelope are verified, and the log ends byte-identical to
// the source's (same stored bytes at the same offsets). A checksum or framing error returns an
// error wrapping storage.ErrCorrupt; the records already ingested are a verified prefix of the
// source's log, and the applied index reflects exactly them. Either way the log's first offset
// becomes the manifest's: the node holds exactly [first, next).
//
// # Consumer groups
//
// Machine also replicates the consumer groups' committed offsets (groups.go): commit, delete
// group and expire commands (JSON bodies, stamped with the leader's clock), applied the same on
// every replica and kept in snapshot manifests with the topics. Membership and assignment are
// the leader's, in memory (server/groups.go); only where each group stands is replicated.
//
// # Offsets by time
//
// OffsetForTime answers Kafka's ListOffsets by timestamp: the first record whose Timestamp is
// at or after a time. Over a storage.Log with a time index (storage.TimeIndex, fed by
// StoredTimestamp) it reads a few records (at most the rest of a segment more after a
// retention cut inside it: storage.TimeIndex.OffsetForTimeFrom the first offset served);
// otherwise it reads from the log start.
//
// # Reads
//
// Read returns one record, waiting (storage.Log.Wait, no polling) up to the context's deadline
// for an offset not yet applied; Records iterates from an offset and tails the log. A follower
// serves only what it has applied, i.e. committed records.
//
// # Checksums
//
// Checksum returns the chained checksum of the stored records at an applied offset (each
// record's CRC-32C folded into the previous sum, restarting every ChecksumBlock offsets; see
// checksum.go). Every node that stored the same bytes answers the same value: the server's
// divergence detector compares them across the cluster.
//
// # Concurrency
//
// Apply, Snapshot and Restore are called from one goroutine (the consensus' FSM goroutine).
// Snapshot.Persist, SnapshotData, Read, Records, Bounds, AppliedIndex, Err and Failed are safe
// to call concurrently with them and with each other. The FSM starts no goroutines and does not
// own its storage.Log: the caller closes the log.
package fsm
