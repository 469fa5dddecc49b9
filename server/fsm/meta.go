package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Topic errors. Compare with errors.Is; they are wrapped with context. As Apply results they
// are deterministic: every replica answers the same.
var (
	// ErrUnknownTopic: no topic has that name (or ID).
	ErrUnknownTopic = errors.New("fsm: unknown topic")
	// ErrTopicReplaced: the topic named is not the one asked for by ID: that one was deleted,
	// and a topic was created again under its name. It is an ErrUnknownTopic too.
	ErrTopicReplaced = fmt.Errorf("%w: deleted and created again since", ErrUnknownTopic)
	// ErrUnknownPartition: the topic has no such partition.
	ErrUnknownPartition = errors.New("fsm: unknown partition")
	// ErrTopicExists: a topic of that name exists (or one whose name collides with it).
	ErrTopicExists = errors.New("fsm: topic exists")
	// ErrInvalidTopic: a bad topic name, partition count or configuration, or an operation the
	// topic does not allow (deleting the default topic, lowering a partition count).
	ErrInvalidTopic = errors.New("fsm: invalid topic request")
)

// DefaultTopic is the name of the topic every request without a topic means. Its partition 0
// is the single log of servers before topics (the data dir's log/).
const DefaultTopic = "default"

// Bounds of the topic model, the same on every node.
const (
	// MaxTopicNameLen is Kafka's limit on a topic name.
	MaxTopicNameLen = 249
	// MaxPartitionsPerTopic bounds one topic's partitions.
	MaxPartitionsPerTopic = 4096
	// MaxPartitions bounds the partitions of all topics together.
	MaxPartitions = 20000
)

// Timestamp types (TopicConfig.TimestampType).
const (
	// TimestampCreate: a record keeps the producer's timestamp when it has one (the default).
	TimestampCreate = "create"
	// TimestampAppend: the leader drops producers' timestamps; records are dated by their append
	// time.
	TimestampAppend = "append"
)

// TopicConfig is a topic's own settings. A zero field means the server's setting (the
// leader's, as for the single log).
type TopicConfig struct {
	// RetentionBytes bounds each partition's stored size; 0: the server's; -1: unlimited.
	RetentionBytes int64 `json:"retention_bytes,omitempty"`
	// RetentionMs bounds the age of each partition's records in milliseconds; 0: the
	// server's; -1: unlimited.
	RetentionMs int64 `json:"retention_ms,omitempty"`
	// MaxRecordBytes bounds a record (key, headers and value) as the leader checks it; 0: the
	// server's --max-record-bytes.
	MaxRecordBytes int `json:"max_record_bytes,omitempty"`
	// TimestampType is TimestampCreate ("" means it) or TimestampAppend.
	TimestampType string `json:"timestamp_type,omitempty"`
}

// Validate checks the settings' ranges. Errors: ErrInvalidTopic, wrapped.
func (c TopicConfig) Validate() error {
	switch {
	case c.RetentionBytes < -1:
		return fmt.Errorf("%w: retention bytes %d (use -1 for unlimited)", ErrInvalidTopic, c.RetentionBytes)
	case c.RetentionMs < -1:
		return fmt.Errorf("%w: retention ms %d (use -1 for unlimited)", ErrInvalidTopic, c.RetentionMs)
	case c.MaxRecordBytes < 0 || c.MaxRecordBytes > MaxRecordValueBytes:
		return fmt.Errorf("%w: max record bytes %d outside [0, %d]", ErrInvalidTopic, c.MaxRecordBytes, MaxRecordValueBytes)
	case c.TimestampType != "" && c.TimestampType != TimestampCreate && c.TimestampType != TimestampAppend:
		return fmt.Errorf("%w: timestamp type %q (want %q or %q)", ErrInvalidTopic, c.TimestampType, TimestampCreate, TimestampAppend)
	}
	return nil
}

// Retention returns the policy for a partition of a topic with this configuration, given the
// server's: each field of c overrides the server's when set.
func (c TopicConfig) Retention(server RetentionPolicy) RetentionPolicy {
	p := server
	switch {
	case c.RetentionBytes == -1:
		p.Bytes = 0
	case c.RetentionBytes > 0:
		p.Bytes = c.RetentionBytes
	}
	switch {
	case c.RetentionMs == -1:
		p.Age = 0
	case c.RetentionMs > int64(math.MaxInt64/time.Millisecond):
		// More than a Duration holds (about 292 years): multiplied, it wrapped to a tiny or
		// negative bound. No record is that old: the largest Duration keeps them all.
		p.Age = math.MaxInt64
	case c.RetentionMs > 0:
		p.Age = time.Duration(c.RetentionMs) * time.Millisecond
	}
	return p
}

// TopicConfigPatch changes some settings of a topic: each non-nil field replaces the topic's
// (a zero value resets it to the server's).
type TopicConfigPatch struct {
	RetentionBytes *int64  `json:"retention_bytes,omitempty"`
	RetentionMs    *int64  `json:"retention_ms,omitempty"`
	MaxRecordBytes *int    `json:"max_record_bytes,omitempty"`
	TimestampType  *string `json:"timestamp_type,omitempty"`
}

func (p TopicConfigPatch) apply(c TopicConfig) TopicConfig {
	if p.RetentionBytes != nil {
		c.RetentionBytes = *p.RetentionBytes
	}
	if p.RetentionMs != nil {
		c.RetentionMs = *p.RetentionMs
	}
	if p.MaxRecordBytes != nil {
		c.MaxRecordBytes = *p.MaxRecordBytes
	}
	if p.TimestampType != nil {
		c.TimestampType = *p.TimestampType
	}
	return c
}

// Validate checks the settings p gives a topic whose settings are c. Errors: ErrInvalidTopic,
// wrapped.
func (p TopicConfigPatch) Validate(c TopicConfig) error { return p.apply(c).Validate() }

// Topic is a topic's metadata.
type Topic struct {
	Name       string      `json:"name"`
	ID         TopicID     `json:"id"`
	Partitions uint32      `json:"partitions"`
	Config     TopicConfig `json:"config"`
}

// MarshalText / UnmarshalText make a TopicID a UUID string in JSON.
func (id TopicID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses a UUID string.
func (id *TopicID) UnmarshalText(b []byte) error {
	v, err := ParseTopicID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ValidateTopicName checks a name against Kafka's rules: 1 to 249 characters of
// [a-zA-Z0-9._-], neither "." nor "..". Errors: ErrInvalidTopic, wrapped.
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty topic name", ErrInvalidTopic)
	case len(name) > MaxTopicNameLen:
		return fmt.Errorf("%w: topic name of %d characters, limit %d", ErrInvalidTopic, len(name), MaxTopicNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("%w: topic name %q is not allowed", ErrInvalidTopic, name)
	}
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			if c == utf8.RuneError {
				return fmt.Errorf("%w: topic name %q: byte %#02x (not UTF-8) not in [a-zA-Z0-9._-]", ErrInvalidTopic, name, name[i])
			}
			return fmt.Errorf("%w: topic name %q: character %q not in [a-zA-Z0-9._-]", ErrInvalidTopic, name, c)
		}
	}
	return nil
}

// collisionKey is what Kafka compares to refuse names that differ only by '.' and '_' (they
// collide in metric names).
func collisionKey(name string) string { return strings.ReplaceAll(name, ".", "_") }

// Metadata command bodies (JSON; see format_v3.go).
type (
	createTopicBody struct {
		Topic Topic `json:"topic"`
	}
	deleteTopicBody struct {
		Name string  `json:"name"`
		ID   TopicID `json:"id"`
	}
	createPartitionsBody struct {
		Name       string  `json:"name"`
		ID         TopicID `json:"id"`
		Partitions uint32  `json:"partitions"`
	}
	alterTopicBody struct {
		Name  string           `json:"name"`
		ID    TopicID          `json:"id"`
		Patch TopicConfigPatch `json:"patch"`
	}
)

// decodeStrict decodes a JSON body, refusing unknown fields and trailing data.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidCommand, err)
	}
	if d.More() {
		return fmt.Errorf("%w: data after the JSON body", ErrInvalidCommand)
	}
	return nil
}

// TopicResult is the Apply result of a topic command: the topic after it.
type TopicResult struct {
	Topic Topic
}

// metaState is the replicated metadata: topics (the default one included) and, later, the
// producer table. It is kept in snapshot manifests and rebuilt by replay.
type metaState struct {
	Topics []Topic `json:"topics"`
	// Producers is the idempotent producers' table (producer.go).
	Producers producerTable `json:"producers"`
	// Groups are the consumer groups' committed offsets (groups.go), by name.
	Groups []groupState `json:"groups,omitempty"`
}
