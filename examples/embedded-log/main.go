// Command embedded-log uses storage/segment alone, as a local append-only log: it appends
// records, reads them back by offset and by range, closes the log, opens it again and finds
// every record still there.
//
//	go run . [dir]    (default: a new temporary directory, removed at the end)
package main

import (
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
)

func main() {
	dir := ""
	if len(os.Args) > 1 {
		dir = os.Args[1]
	} else {
		tmp, err := os.MkdirTemp("", "embedded-log")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}

	l, err := segment.Open(dir, segment.Config{
		Sync:         segment.SyncAlways, // fsync before Append returns (group-committed)
		SegmentBytes: 1 << 10,            // tiny segments, to roll a few
	})
	if err != nil {
		log.Fatal(err)
	}
	var values [][]byte
	for i := range 50 {
		values = append(values, fmt.Appendf(nil, "event %02d", i))
	}
	first, _ := l.Bounds()
	for i := 0; i < len(values); i += 10 {
		// One atomic batch: after a crash, all of it or none.
		if _, err := l.Append(values[i : i+10]...); err != nil {
			log.Fatal(err)
		}
	}
	v, err := l.Read(first + 7)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("read %d: %s\n", first+7, v)
	if _, err := l.Read(first + 50); !errors.Is(err, storage.ErrOutOfRange) {
		log.Fatalf("reading past the end: %v, want storage.ErrOutOfRange", err)
	}
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}

	// Reopen: the records survived.
	l, err = segment.Open(dir, segment.Config{SegmentBytes: 1 << 10})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	lowest, next := l.Bounds()
	n := 0
	for rec, err := range l.Records(lowest, next) {
		if err != nil {
			log.Fatal(err)
		}
		if string(rec.Value) != string(values[rec.Offset-first]) {
			log.Fatalf("offset %d holds %q", rec.Offset, rec.Value)
		}
		n++
	}
	fmt.Printf("reopened: %d records in [%d, %d), %d segments\n", n, lowest, next, l.Segments())
	if n != len(values) {
		log.Fatalf("want %d records", len(values))
	}
	fmt.Println("embedded-log: ok")
}
