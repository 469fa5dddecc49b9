package connect_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

// TestConsumeStreamHeadersBeforeFirstRecord: a handler that calls transport.SendHeader (the
// server's ConsumeStream does, at the log's end) gets its response to the client before any
// message, so a plain HTTP client (or a proxy timing the first byte) is answered at once
// rather than when the first record is written. Before, connect-go sent the headers with the
// first message and the request stood unanswered while the log was idle.
func TestConsumeStreamHeadersBeforeFirstRecord(t *testing.T) {
	s := transporttest.Start(t, harness(tconnect.ProtocolConnect), transport.ServerConfig{})
	msg, err := proto.Marshal(&logv1.ConsumeRequest{Offset: 0}) // the empty log's end
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 5, 5+len(msg)) // a Connect streaming envelope: flags, length, message
	binary.BigEndian.PutUint32(body[1:], uint32(len(msg)))
	body = append(body, msg...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.Addr+transport.MethodConsumeStream, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/connect+proto")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("no response while the log is idle: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/connect+proto" {
		t.Fatalf("response %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	// The stream is open: a record produced now is its first message.
	if _, err := s.Service.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	var env [5]byte
	if _, err := io.ReadFull(res.Body, env[:]); err != nil || env[0] != 0 {
		t.Fatalf("read the first message's envelope: %v (flags %#x)", err, env[0])
	}
}
