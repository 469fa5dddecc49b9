package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Op kinds of the workload.
const (
	KindProduce       = "produce"        // unary Produce through the SDK
	KindProduceBatch  = "produce-batch"  // ProduceBatch through the SDK (atomic, several values)
	KindProduceAsync  = "produce-async"  // one record through the SDK's batching Producer
	KindProduceIdem   = "produce-idem"   // one record through the SDK's idempotent Producer
	KindProduceStream = "produce-stream" // one record on a ProduceStream to the leader
	KindProduceNode   = "produce-node"   // unary Produce sent to one given node (forwarded by a follower)
	KindReadLin       = "read-lin"       // linearizable Consume through the SDK (leader)
	KindReadNode      = "read-node"      // linearizable Consume sent to one given node
	KindReadFollower  = "read-follower"  // Consume through the SDK, followers first
	KindReadStream    = "read-stream"    // records of an SDK Stream from an offset
	KindBoundsNode    = "bounds-node"    // linearizable GetBounds sent to one given node
)

// Op statuses.
const (
	StatusOK      = "ok"      // acknowledged (a read that answered, found or not)
	StatusFail    = "fail"    // definitely had no effect
	StatusUnknown = "unknown" // a write that may or may not have taken effect
)

// Op is one operation of the history.
type Op struct {
	ID      int64    `json:"id"`
	Process int      `json:"process"`
	Kind    string   `json:"f"`
	Node    string   `json:"node,omitempty"`   // the node (API address) a read went to, when known
	Values  []string `json:"values,omitempty"` // produce: the values; read: what was read
	// Offset: produce: the first offset the write was given (ok only); read: the offset asked;
	// bounds: the log's next offset answered.
	Offset   uint64 `json:"offset"`
	Found    bool   `json:"found,omitempty"` // read: a record was returned (false: out of range)
	Status   string `json:"status,omitempty"`
	Invoke   int64  `json:"invoke_ns"`             // since the run's start
	Complete int64  `json:"complete_ns,omitempty"` // since the run's start
	Err      string `json:"err,omitempty"`
}

// IsWrite reports whether the op produces records.
func (o *Op) IsWrite() bool {
	switch o.Kind {
	case KindProduce, KindProduceBatch, KindProduceAsync, KindProduceIdem, KindProduceStream, KindProduceNode:
		return true
	}
	return false
}

// NemesisEvent is one window of a fault: when it began and ended, what it did.
type NemesisEvent struct {
	Name   string `json:"name"`
	Detail string `json:"detail,omitempty"`
	Start  int64  `json:"start_ns"`
	End    int64  `json:"end_ns"`
}

// line is one JSON line of the history file.
type line struct {
	Type    string        `json:"type"` // invoke, ok, fail, unknown, nemesis
	Time    int64         `json:"time_ns"`
	Op      *Op           `json:"op,omitempty"`
	Nemesis *NemesisEvent `json:"nemesis,omitempty"`
}

// History records the ops of one run, in memory and as JSON lines (invoke, then ok / fail /
// unknown) in a file. Safe for concurrent use.
type History struct {
	start time.Time
	mu    sync.Mutex
	next  int64
	ops   []*Op
	nem   []NemesisEvent
	w     *bufio.Writer
	f     io.Closer
	err   error
}

// NewHistory returns a History writing to path ("" keeps it in memory only).
func NewHistory(path string) (*History, error) {
	h := &History{start: time.Now()}
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("chaos: history file: %w", err)
		}
		h.f, h.w = f, bufio.NewWriter(f)
	}
	return h, nil
}

// Now is the time since the history began, in ns.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

func (h *History) writeLocked(l line) {
	if h.w == nil || h.err != nil {
		return
	}
	b, err := json.Marshal(l)
	if err != nil {
		h.err = err
		return
	}
	b = append(b, '\n')
	if _, err := h.w.Write(b); err != nil {
		h.err = err
	}
}

// Invoke starts an op and records its invocation.
func (h *History) Invoke(process int, kind, node string, offset uint64, values []string) *Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.next++
	op := &Op{ID: h.next, Process: process, Kind: kind, Node: node, Offset: offset, Values: values, Invoke: h.Now()}
	h.ops = append(h.ops, op)
	c := *op
	h.writeLocked(line{Type: "invoke", Time: op.Invoke, Op: &c})
	return op
}

// Complete records an op's outcome. For a read, values are what was read and found says
// whether the offset held a record; for an ok write, offset is the first offset it got.
func (h *History) Complete(op *Op, status string, offset uint64, found bool, values []string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.Status = status
	op.Complete = h.Now()
	if !op.IsWrite() {
		op.Values, op.Found = values, found
	}
	if (op.IsWrite() || op.Kind == KindBoundsNode) && status == StatusOK {
		op.Offset = offset
	}
	if err != nil {
		op.Err = err.Error()
	}
	c := *op
	h.writeLocked(line{Type: status, Time: op.Complete, Op: &c})
}

// Nemesis records a fault window.
func (h *History) Nemesis(ev NemesisEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nem = append(h.nem, ev)
	e := ev
	h.writeLocked(line{Type: "nemesis", Time: ev.Start, Nemesis: &e})
}

// Ops returns the ops recorded so far (shared: read them only once the workload stopped).
func (h *History) Ops() []*Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Op(nil), h.ops...)
}

// NemesisEvents returns the fault windows recorded so far.
func (h *History) NemesisEvents() []NemesisEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]NemesisEvent(nil), h.nem...)
}

// Close flushes and closes the file.
func (h *History) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.w == nil {
		return h.err
	}
	if err := h.w.Flush(); err != nil && h.err == nil {
		h.err = err
	}
	if err := h.f.Close(); err != nil && h.err == nil {
		h.err = err
	}
	h.w = nil
	return h.err
}

// ReadHistory reads a history file back (ops as last completed, and nemesis windows).
func ReadHistory(r io.Reader) ([]*Op, []NemesisEvent, error) {
	dec := json.NewDecoder(r)
	byID := map[int64]*Op{}
	var ops []*Op
	var nem []NemesisEvent
	for {
		var l line
		if err := dec.Decode(&l); err == io.EOF {
			break
		} else if err != nil {
			return nil, nil, fmt.Errorf("chaos: read history: %w", err)
		}
		switch {
		case l.Nemesis != nil:
			nem = append(nem, *l.Nemesis)
		case l.Op != nil:
			if o, ok := byID[l.Op.ID]; ok {
				*o = *l.Op
				continue
			}
			o := *l.Op
			byID[o.ID] = &o
			ops = append(ops, &o)
		}
	}
	return ops, nem, nil
}
