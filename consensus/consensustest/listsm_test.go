package consensustest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/commitlog-go/commitlog/consensus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func entries(from, to uint64) []consensus.Entry {
	var es []consensus.Entry
	for i := from; i <= to; i++ {
		es = append(es, consensus.Entry{Index: i, Term: 1, Data: []byte{byte(i)}})
	}
	return es
}

func TestListSMPersistsAndSkipsReplays(t *testing.T) {
	dir := t.TempDir()
	l, err := NewListSM(dir)
	if err != nil {
		t.Fatal(err)
	}
	res := l.Apply(entries(1, 3))
	if res[2] != uint64(2) {
		t.Fatalf("results %v", res)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = NewListSM(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	res = l.Apply(entries(2, 4)) // 2 and 3 are replays
	if !errors.Is(res[0].(error), ErrDuplicate) || !errors.Is(res[1].(error), ErrDuplicate) || res[2] != uint64(3) {
		t.Fatalf("results %v", res)
	}
	if l.Len() != 4 || l.Skipped() != 2 {
		t.Fatalf("len %d skipped %d, want 4 and 2", l.Len(), l.Skipped())
	}
}

func TestListSMSnapshotRoundTrip(t *testing.T) {
	src, _ := NewListSM("")
	src.Apply(entries(1, 10))
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var manifest bytes.Buffer
	if err := snap.Persist(&manifest); err != nil {
		t.Fatal(err)
	}
	src.Apply(entries(11, 12)) // after the snapshot: not in its data
	size, err := src.SnapshotDataSize(manifest.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	rc, err := src.SnapshotData(manifest.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || int64(len(data)) != size {
		t.Fatalf("data %d bytes (err %v), size said %d", len(data), err, size)
	}

	dst, _ := NewListSM(t.TempDir())
	defer dst.Close()
	if err := dst.Restore(manifest.Bytes(), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if dst.Len() != 10 || dst.Records()[9].Index != 10 {
		t.Fatalf("restored %d records", dst.Len())
	}
	// A node that already holds the records reads nothing.
	if err := src.Restore(manifest.Bytes(), errReader{}); err != nil {
		t.Fatalf("restore onto a list that holds the snapshot: %v", err)
	}
	if src.Len() != 12 {
		t.Fatalf("restore dropped entries after the snapshot: %d", src.Len())
	}
	// Truncated data is an error, not a short list.
	if err := dst.Restore([]byte(`{"count":20,"index":20}`), bytes.NewReader(data)); err == nil {
		t.Fatalf("restore from truncated data succeeded")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("must not be read") }

func TestFaultNetworkPartition(t *testing.T) {
	fn := NewFaultNetwork()
	lnA, _ := net.Listen("tcp", "127.0.0.1:0")
	lnB, _ := net.Listen("tcp", "127.0.0.1:0")
	a, b := fn.Layer("a", lnA), fn.Layer("b", lnB)
	defer a.Close()
	defer b.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := b.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	c, err := a.Dial(hraft.ServerAddress(lnB.Addr().String()), time.Second)
	if err != nil {
		t.Fatalf("dial before partition: %v", err)
	}
	server := <-accepted
	defer server.Close()
	fn.Block("a", "b")
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatalf("write on a connection across a partition succeeded")
	}
	if _, err := a.Dial(hraft.ServerAddress(lnB.Addr().String()), time.Second); !errors.Is(err, ErrPartitioned) {
		t.Fatalf("dial across partition: %v, want ErrPartitioned", err)
	}
	fn.HealAll()
	c, err = a.Dial(hraft.ServerAddress(lnB.Addr().String()), time.Second)
	if err != nil {
		t.Fatalf("dial after heal: %v", err)
	}
	c.Close()
	(<-accepted).Close()
}
