package cli

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// TestWriteTextQuotesControlCharacters: consume --format text quotes a key, header or value
// holding a control character, as it quotes tabs and newlines. NUL and ESC were written as
// they were stored, so a record could send a terminal an escape sequence (clear the screen,
// rewrite the lines shown) to whoever read it.
func TestWriteTextQuotesControlCharacters(t *testing.T) {
	var out strings.Builder
	w := bufio.NewWriter(&out)
	writeText(w, client.Record{
		Offset:    7,
		Timestamp: time.UnixMilli(0),
		Key:       []byte("k\x00"),
		Headers:   []client.Header{{Key: "a\x1bb", Value: []byte("v\x08")}},
		Value:     []byte("\x1b[2Jhi\x7f"),
	})
	_ = w.Flush()
	want := "7\t1970-01-01T00:00:00Z\t\"k\\x00\"\t\"a\\x1bb\"=\"v\\b\"\t\"\\x1b[2Jhi\\x7f\"\n"
	if out.String() != want {
		t.Errorf("writeText = %q, want %q", out.String(), want)
	}
	// Printable text, other scripts included, is still written as it is.
	out.Reset()
	writeText(w, client.Record{Offset: 1, Key: []byte("clé"), Value: []byte("héllo wörld ✓")})
	_ = w.Flush()
	if want := "1\t-\tclé\t-\théllo wörld ✓\n"; out.String() != want {
		t.Errorf("writeText = %q, want %q", out.String(), want)
	}
}
