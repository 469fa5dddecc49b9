package cli

import (
	"bytes"
	"strings"
	"testing"
)

// readAllInputs runs readProduceInput on stdin and returns what it sends.
func readAllInputs(stdin []byte) []produceInput {
	ch := make(chan produceInput, 4)
	quit := make(chan struct{})
	defer close(quit)
	go readProduceInput(bytes.NewReader(stdin), nil, ch, quit)
	var got []produceInput
	for in := range ch {
		got = append(got, in)
		if in.end {
			return got
		}
	}
	return got
}

// TestProduceLineOfExactly16MiB: produce --help says a line of standard input holds at most
// 16 MiB, but a line of exactly 16 MiB was refused as "over the 16 MiB limit" (the scanner's
// buffer had no room for the newline after it). One byte more is refused, naming the line.
func TestProduceLineOfExactly16MiB(t *testing.T) {
	for _, end := range []string{"\n", "\r\n", ""} {
		got := readAllInputs(append(bytes.Repeat([]byte("y"), maxLineBytes), end...))
		if len(got) != 2 || len(got[0].value) != maxLineBytes || got[1].err != nil {
			var err error
			if len(got) > 0 {
				err = got[len(got)-1].err
			}
			t.Errorf("a line of exactly %d bytes ending %q: %d inputs, last error %v; want the line, then the end", maxLineBytes, end, len(got), err)
		}
	}
	for _, end := range []string{"\n", "\r\n", ""} {
		got := readAllInputs(append(bytes.Repeat([]byte("y"), maxLineBytes+1), end...))
		if len(got) != 1 || got[0].err == nil || !strings.Contains(got[0].err.Error(), "line 1 is over the 16 MiB limit") {
			t.Errorf("a line of %d bytes ending %q: %d inputs (%+v); want only the end, with an error naming line 1", maxLineBytes+1, end, len(got), got[0].err)
		}
	}
}

// TestProduceHelpSaysCRDropped: a line's trailing carriage return is dropped with its newline
// (bufio.ScanLines, as Kafka's console producer reads lines), so binary values ending with one
// lost it silently: produce --help says so, and what it says holds.
func TestProduceHelpSaysCRDropped(t *testing.T) {
	if _, help, _ := run(t, t.Context(), "produce", "--help"); !strings.Contains(help, "the carriage return is dropped too") {
		t.Errorf("produce --help does not say that a line's carriage return is dropped:\n%s", help)
	}
	got := readAllInputs([]byte("a\r\nb\rc\n"))
	if len(got) != 3 || string(got[0].value) != "a" || string(got[1].value) != "b\rc" {
		t.Errorf("inputs %+v; want \"a\" (its \\r\\n dropped), then \"b\\rc\" (a carriage return inside a line kept)", got)
	}
}
