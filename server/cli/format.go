package cli

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/commitlog-go/commitlog/client"
)

// writeText writes rec as one tab-separated line: offset, timestamp (RFC 3339, UTC, "-" when
// none), key ("-" when none; quoted when it is empty, is "-", or holds tabs, newlines, other
// control characters or bytes that are not UTF-8), headers (k=v joined with ","; "-" when none)
// and value (quoted likewise).
func writeText(out *bufio.Writer, rec client.Record) {
	out.WriteString(strconv.FormatUint(rec.Offset, 10))
	out.WriteByte('\t')
	if rec.Timestamp.IsZero() {
		out.WriteByte('-')
	} else {
		out.WriteString(rec.Timestamp.UTC().Format(time.RFC3339Nano))
	}
	out.WriteByte('\t')
	switch {
	case rec.Key == nil:
		out.WriteByte('-')
	case string(rec.Key) == "-":
		out.WriteString(`"-"`) // as is, it read as no key
	default:
		out.WriteString(textField(rec.Key))
	}
	out.WriteByte('\t')
	if len(rec.Headers) == 0 {
		out.WriteByte('-')
	}
	for i, h := range rec.Headers {
		if i > 0 {
			out.WriteByte(',')
		}
		out.WriteString(textField([]byte(h.Key)))
		out.WriteByte('=')
		out.WriteString(textField(h.Value))
	}
	out.WriteByte('\t')
	out.WriteString(textField(rec.Value))
	out.WriteByte('\n')
}

// textField is b as is when that keeps the line's columns apart and writes nothing a terminal
// acts on, else Go-quoted: a control character (NUL, ESC starting a terminal's escape sequence,
// a backspace) written as is reached the terminal, which could hide or rewrite what was shown.
func textField(b []byte) string {
	s := string(b)
	if len(b) > 0 && utf8.Valid(b) && !strings.ContainsAny(s, ",=\"") && !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	return strconv.Quote(s)
}

// jsonRecord is one record as consume --format json prints it. Keys, values and header
// values are strings when they are UTF-8, else base64 in the *_base64 field instead.
type jsonRecord struct {
	Topic       string       `json:"topic"`
	Partition   uint32       `json:"partition"`
	Offset      uint64       `json:"offset"`
	Timestamp   string       `json:"timestamp,omitempty"`
	Key         *string      `json:"key,omitempty"`
	KeyBase64   string       `json:"key_base64,omitempty"`
	Headers     []jsonHeader `json:"headers,omitempty"`
	Value       *string      `json:"value,omitempty"`
	ValueBase64 string       `json:"value_base64,omitempty"`
}

type jsonHeader struct {
	Key         string  `json:"key"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 string  `json:"value_base64,omitempty"`
}

// textOrBase64 returns b as a string when it is UTF-8, else as base64.
func textOrBase64(b []byte) (*string, string) {
	if utf8.Valid(b) {
		s := string(b)
		return &s, ""
	}
	return nil, base64.StdEncoding.EncodeToString(b)
}

// writeJSON writes rec as one JSON object and a newline.
func writeJSON(out *bufio.Writer, rec client.Record) error {
	j := jsonRecord{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}
	if !rec.Timestamp.IsZero() {
		j.Timestamp = rec.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	if rec.Key != nil {
		j.Key, j.KeyBase64 = textOrBase64(rec.Key)
	}
	for _, h := range rec.Headers {
		jh := jsonHeader{Key: h.Key}
		jh.Value, jh.ValueBase64 = textOrBase64(h.Value)
		j.Headers = append(j.Headers, jh)
	}
	j.Value, j.ValueBase64 = textOrBase64(rec.Value)
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	out.Write(b)
	return out.WriteByte('\n')
}

// plural is n and noun, with an "s" unless n is 1: "1 partition", "3 partitions".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
