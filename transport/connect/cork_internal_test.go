package connect

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// flushCounter counts the flushes that reach the server's writer.
type flushCounter struct {
	*httptest.ResponseRecorder
	flushes int
}

func (f *flushCounter) Flush() { f.flushes++ }

// TestCorkWriter: while corked, the flushes connect-go makes after each message do not reach
// the connection; uncorked, each does, and the batch's own flush does.
func TestCorkWriter(t *testing.T) {
	fc := &flushCounter{ResponseRecorder: httptest.NewRecorder()}
	w := &corkWriter{ResponseWriter: fc}
	var _ http.Flusher = w
	w.Flush()
	if fc.flushes != 1 {
		t.Fatalf("uncorked Flush: %d flushes, want 1", fc.flushes)
	}
	w.corked.Store(true)
	for range 10 {
		_, _ = w.Write([]byte("message"))
		w.Flush()
	}
	if fc.flushes != 1 {
		t.Fatalf("corked: %d flushes, want still 1", fc.flushes)
	}
	w.corked.Store(false)
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	if fc.flushes != 2 || fc.Body.Len() != 70 {
		t.Fatalf("after the batch: %d flushes, %d bytes; want 2, 70", fc.flushes, fc.Body.Len())
	}
	if w.Unwrap() != http.ResponseWriter(fc) {
		t.Fatal("Unwrap does not return the server's writer")
	}
}
