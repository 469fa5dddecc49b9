package loadgen

import "sync"

// watermark tracks the offsets readers may read: [start, high), where high is one past the
// highest offset acknowledged to a producer of this run. Raft commits in order, so every offset
// below an acknowledged one exists. Once final, high no longer grows. Safe for concurrent use.
type watermark struct {
	mu      sync.Mutex
	start   uint64
	high    uint64
	final   bool
	changed chan struct{} // closed and replaced whenever high or final changes
	isFinal chan struct{} // closed once final
}

func newWatermark(start uint64) *watermark {
	return &watermark{start: start, high: start, changed: make(chan struct{}), isFinal: make(chan struct{})}
}

// ack records that offsets [off, off+n) were acknowledged.
func (w *watermark) ack(off, n uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if end := off + n; end > w.high && !w.final {
		w.high = end
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

// finish marks high as final.
func (w *watermark) finish() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.final {
		return
	}
	w.final = true
	close(w.isFinal)
	close(w.changed)
	w.changed = make(chan struct{})
}

// state returns high, whether it is final, and a channel closed on the next change.
func (w *watermark) state() (high uint64, final bool, changed <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.high, w.final, w.changed
}
