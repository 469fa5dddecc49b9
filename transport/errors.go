package transport

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// Why a client could not talk to a server, when its transport can tell: both implementations'
// clients put one of these in the chain of the call's *Error (errors.Is), next to the error
// their library returned, so that callers can explain a mismatched configuration. The code is
// what it would be without them (Unavailable, or Unknown for ErrGRPCOnly).
var (
	// ErrClosedInPreface: the server closed the connection before it sent its HTTP/2
	// preface. A TLS server does that to a plaintext client, whose preface it reads as a
	// broken TLS handshake; over TLS it comes after the handshake, as a TLS 1.3 server that
	// refuses the client's certificate (or its absence) may end the connection.
	ErrClosedInPreface = errors.New("transport: the server closed the connection during the HTTP/2 preface")
	// ErrNotTLS: the client began a TLS handshake and the server answered in plaintext (an
	// HTTP response, HTTP/2 frames): it does not use TLS.
	ErrNotTLS = errors.New("transport: the server answered the TLS handshake in plaintext")
	// ErrServerCertificate: the client did not verify the server's TLS certificate (signed by
	// no CA the client trusts, expired, or not issued for the name dialled).
	ErrServerCertificate = errors.New("transport: the server's TLS certificate was not verified")
	// ErrTLSRefused: the server ended the TLS handshake with an alert: it refused the
	// client's certificate, or its absence, or the TLS versions offered.
	ErrTLSRefused = errors.New("transport: the server refused the TLS handshake")
	// ErrNoClientCertificate: the server asked for a TLS client certificate, the client has
	// none, and the call failed before an answer. A TLS 1.3 server that requires one refuses
	// it after the client's side of the handshake is done: the client may see only the
	// connection end (a reset, a broken pipe).
	ErrNoClientCertificate = errors.New("transport: the server asked for a TLS client certificate and the client has none")
	// ErrGRPCOnly: the server answered a Connect (or gRPC-Web) request as a server that speaks
	// gRPC only does (HTTP 415 with a gRPC content type).
	ErrGRPCOnly = errors.New("transport: the server speaks gRPC only")
)

// Code is a status code, numbered as gRPC numbers them (google.rpc.Code), so
// that it converts to and from both wire protocols without a table.
type Code uint32

// The status codes. Their numbers are the gRPC wire values and must not change.
const (
	OK                 Code = 0
	Canceled           Code = 1
	Unknown            Code = 2
	InvalidArgument    Code = 3
	DeadlineExceeded   Code = 4
	NotFound           Code = 5
	AlreadyExists      Code = 6
	PermissionDenied   Code = 7
	ResourceExhausted  Code = 8
	FailedPrecondition Code = 9
	Aborted            Code = 10
	OutOfRange         Code = 11
	Unimplemented      Code = 12
	Internal           Code = 13
	Unavailable        Code = 14
	DataLoss           Code = 15
	Unauthenticated    Code = 16
)

var codeNames = [...]string{
	"ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded",
	"not_found", "already_exists", "permission_denied", "resource_exhausted",
	"failed_precondition", "aborted", "out_of_range", "unimplemented",
	"internal", "unavailable", "data_loss", "unauthenticated",
}

// String returns the code's snake_case name ("out_of_range"), as Connect
// spells codes on the wire, or "code_N" for a number outside the table.
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code_%d", uint32(c))
}

// NotLeader names the leader when a request reached a server that cannot
// serve it because it is not the leader. It travels as the log.v1.NotLeader
// error detail. Empty fields mean the leader is unknown.
type NotLeader struct {
	// LeaderID is the leader's Raft server id.
	LeaderID string
	// LeaderAddr is the leader's API address, the one clients dial.
	LeaderAddr string
}

// Error is the transport-neutral error: a code, a message, and optionally
// the NotLeader detail. Handlers return it (directly or wrapped) to choose
// the status the client sees; clients of both implementations return it for
// every status other than OK. An Error is immutable once built and safe to
// share between goroutines.
type Error struct {
	code      Code
	msg       string
	notLeader *NotLeader
	// write says what became of a write: writeUnknown (the OutcomeUnknown detail) or
	// writeNotProposed (the NotProposed detail); zero when the error says neither.
	write writeOutcome
	// reason is the detail's reason text (OutcomeUnknown, NotProposed).
	reason string
	// rejected is the ProducerRejected detail's reason; zero when absent.
	rejected ProducerRejection
	// group is the GroupError detail (consumer groups), never modified once set.
	group *logv1.GroupError
	cause error
}

type writeOutcome uint8

const (
	writeUnset writeOutcome = iota
	writeUnknown
	writeNotProposed
)

// Errorf builds an *Error with code and a message formatted as fmt.Errorf
// does; a %w verb makes the wrapped error reachable through errors.Is/As
// (on this side of the wire only: only the message travels).
func Errorf(code Code, format string, args ...any) *Error {
	cause := fmt.Errorf(format, args...)
	return &Error{code: code, msg: cause.Error(), cause: errors.Unwrap(cause)}
}

// NewError builds an *Error with code whose message is err's and which
// wraps err. A nil err gives an empty message.
func NewError(code Code, err error) *Error {
	e := &Error{code: code, cause: err}
	if err != nil {
		e.msg = err.Error()
	}
	return e
}

// NotLeaderError builds the FailedPrecondition error a server returns when a
// request needs the leader, carrying the leader's id and API address as the
// NotLeader detail.
func NotLeaderError(leader NotLeader, msg string) *Error {
	return &Error{code: FailedPrecondition, msg: msg, notLeader: &leader}
}

// WithNotLeader returns a copy of e carrying the NotLeader detail. Used by
// transport implementations when decoding errors from the wire.
func (e *Error) WithNotLeader(leader NotLeader) *Error {
	c := *e
	c.notLeader = &leader
	return &c
}

// WithOutcomeUnknown returns a copy of e carrying the OutcomeUnknown detail: the write may
// have been appended (reason says why, for people). It replaces a NotProposed detail.
func (e *Error) WithOutcomeUnknown(reason string) *Error {
	c := *e
	c.write, c.reason = writeUnknown, reason
	return &c
}

// WithNotProposed returns a copy of e carrying the NotProposed detail: the write was refused
// before it was proposed, so nothing was appended (reason says why, for people). It replaces
// an OutcomeUnknown detail.
func (e *Error) WithNotProposed(reason string) *Error {
	c := *e
	c.write, c.reason = writeNotProposed, reason
	return &c
}

// ProducerRejection says why the idempotent producer checks refused a write (the
// log.v1.ProducerRejected error detail, sent with FailedPrecondition): nothing was stored by
// it. Its values are the wire enum's.
type ProducerRejection int32

// The reasons of ProducerRejected. Their numbers are the wire values and must not change.
const (
	// ProducerUnknown: the producer ID is unknown (never handed out, or expired).
	ProducerUnknown ProducerRejection = ProducerRejection(logv1.ProducerRejection_PRODUCER_REJECTION_UNKNOWN_PRODUCER)
	// ProducerFenced: a newer InitProducer for the same ID bumped the epoch.
	ProducerFenced ProducerRejection = ProducerRejection(logv1.ProducerRejection_PRODUCER_REJECTION_FENCED)
	// ProducerOutOfOrder: the base sequence leaves a gap after the last batch stored.
	ProducerOutOfOrder ProducerRejection = ProducerRejection(logv1.ProducerRejection_PRODUCER_REJECTION_OUT_OF_ORDER_SEQUENCE)
	// ProducerDuplicate: a retry of a batch stored before whose offsets are no longer known.
	ProducerDuplicate ProducerRejection = ProducerRejection(logv1.ProducerRejection_PRODUCER_REJECTION_DUPLICATE_SEQUENCE)
)

// ProducerRejectedError builds the FailedPrecondition error a server returns when the
// idempotent producer checks refuse a write, carrying the ProducerRejected detail.
func ProducerRejectedError(reason ProducerRejection, err error) *Error {
	e := NewError(FailedPrecondition, err)
	e.rejected = reason
	return e
}

// WithProducerRejected returns a copy of e carrying the ProducerRejected detail.
func (e *Error) WithProducerRejected(reason ProducerRejection) *Error {
	c := *e
	c.rejected = reason
	return &c
}

// ProducerRejected reports whether the error carries the ProducerRejected detail, and its
// reason.
func (e *Error) ProducerRejected() (ProducerRejection, bool) {
	return e.rejected, e.rejected != 0
}

// ProducerRejectedDetail returns the ProducerRejected detail of the first *Error in err's
// chain, if there is one and it carries the detail.
func ProducerRejectedDetail(err error) (ProducerRejection, bool) {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.ProducerRejected()
	}
	return 0, false
}

// WithGroupError returns a copy of e carrying the GroupError detail (a copy of d): why a
// consumer group request was refused, for clients to decide on (rejoin, refresh, give up).
func (e *Error) WithGroupError(d *logv1.GroupError) *Error {
	c := *e
	c.group = proto.CloneOf(d)
	return &c
}

// GroupError returns a copy of the GroupError detail, if the error carries one.
func (e *Error) GroupError() (*logv1.GroupError, bool) {
	if e.group == nil {
		return nil, false
	}
	return proto.CloneOf(e.group), true
}

// GroupErrorDetail returns the GroupError detail of the first *Error in err's chain, if it
// carries one.
func GroupErrorDetail(err error) (*logv1.GroupError, bool) {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.GroupError()
	}
	return nil, false
}

// GroupErrorReason returns the reason of err's GroupError detail, or
// REASON_UNSPECIFIED when it has none.
func GroupErrorReason(err error) logv1.GroupError_Reason {
	d, _ := GroupErrorDetail(err)
	return d.GetReason()
}

// OutcomeUnknown reports whether the error carries the OutcomeUnknown detail, and its reason.
func (e *Error) OutcomeUnknown() (reason string, ok bool) {
	return e.reason, e.write == writeUnknown
}

// NotProposed reports whether the error carries the NotProposed detail, and its reason.
func (e *Error) NotProposed() (reason string, ok bool) {
	return e.reason, e.write == writeNotProposed
}

// WithCause returns a copy of e that wraps cause (for errors.Is and errors.As), its message
// unchanged. Transport implementations use it to keep the error their library returned (a
// TLS handshake's, a connection's end) in the chain of the error they decoded.
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.cause = cause
	return &c
}

// Code returns the error's status code.
func (e *Error) Code() Code { return e.code }

// Message returns the error's message, without the code.
func (e *Error) Message() string { return e.msg }

// NotLeader returns the NotLeader detail, if the error carries one.
func (e *Error) NotLeader() (NotLeader, bool) {
	if e.notLeader == nil {
		return NotLeader{}, false
	}
	return *e.notLeader, true
}

// Error returns "transport: <code>: <message>".
func (e *Error) Error() string {
	if e.msg == "" {
		return "transport: " + e.code.String()
	}
	return "transport: " + e.code.String() + ": " + e.msg
}

// Unwrap returns the error this one wraps, if any.
func (e *Error) Unwrap() error { return e.cause }

// CodeOf returns the code of err: OK for nil; the code of the first *Error
// in err's chain; Canceled or DeadlineExceeded for the context errors; and
// Unknown for anything else.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.code
	}
	switch {
	case errors.Is(err, context.Canceled):
		return Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return DeadlineExceeded
	}
	return Unknown
}

// NotLeaderDetail returns the NotLeader detail of the first *Error in err's
// chain, if there is one and it carries the detail.
func NotLeaderDetail(err error) (NotLeader, bool) {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.NotLeader()
	}
	return NotLeader{}, false
}

// IsOutcomeUnknown reports whether the first *Error in err's chain carries the OutcomeUnknown
// detail.
func IsOutcomeUnknown(err error) bool {
	if e, ok := errors.AsType[*Error](err); ok {
		_, ok := e.OutcomeUnknown()
		return ok
	}
	return false
}

// IsNotProposed reports whether the first *Error in err's chain carries the NotProposed detail.
func IsNotProposed(err error) bool {
	if e, ok := errors.AsType[*Error](err); ok {
		_, ok := e.NotProposed()
		return ok
	}
	return false
}

// Details returns the wire forms of e's error details (NotLeader, OutcomeUnknown,
// NotProposed, ProducerRejected, GroupError), for transport implementations to attach.
func (e *Error) Details() []proto.Message {
	var out []proto.Message
	if e.notLeader != nil {
		out = append(out, e.notLeader.Proto())
	}
	switch e.write {
	case writeUnknown:
		out = append(out, &logv1.OutcomeUnknown{Reason: e.reason})
	case writeNotProposed:
		out = append(out, &logv1.NotProposed{Reason: e.reason})
	}
	if e.rejected != 0 {
		out = append(out, &logv1.ProducerRejected{Reason: logv1.ProducerRejection(e.rejected)})
	}
	if e.group != nil {
		out = append(out, proto.CloneOf(e.group))
	}
	return out
}

// WithDetail returns e with the wire error detail d applied when it is one of the details
// Details produces; other messages leave e unchanged. Transport implementations call it for
// each detail decoded from the wire.
func (e *Error) WithDetail(d proto.Message) *Error {
	switch v := d.(type) {
	case *logv1.NotLeader:
		return e.WithNotLeader(NotLeaderFromProto(v))
	case *logv1.OutcomeUnknown:
		return e.WithOutcomeUnknown(v.GetReason())
	case *logv1.NotProposed:
		return e.WithNotProposed(v.GetReason())
	case *logv1.ProducerRejected:
		if v.GetReason() != logv1.ProducerRejection_PRODUCER_REJECTION_UNSPECIFIED {
			return e.WithProducerRejected(ProducerRejection(v.GetReason()))
		}
	case *logv1.GroupError:
		return e.WithGroupError(v)
	}
	return e
}

// AsError converts any error into an *Error: the first *Error in its chain,
// or a new one with CodeOf(err) and err's message. It returns nil for nil.
// Implementations call it on what handlers return before encoding it.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	return NewError(CodeOf(err), err)
}

// Proto returns the wire form of n, the log.v1.NotLeader error detail.
func (n NotLeader) Proto() *logv1.NotLeader {
	return &logv1.NotLeader{LeaderId: n.LeaderID, LeaderAddr: n.LeaderAddr}
}

// NotLeaderFromProto converts the log.v1.NotLeader error detail; nil gives
// the zero NotLeader.
func NotLeaderFromProto(p *logv1.NotLeader) NotLeader {
	return NotLeader{LeaderID: p.GetLeaderId(), LeaderAddr: p.GetLeaderAddr()}
}
