package connect

import (
	"context"
	"net/http"
	"testing"
)

// TestNoteGRPCOnly: which answers mark a call as refused by a server that speaks gRPC only:
// HTTP 415 with a gRPC content type (grpc-go's answer) to a Connect or gRPC-Web request. Not
// to a gRPC request (a gRPC server refusing gRPC is no mismatch of protocols), not a 415 with
// a gRPC-Web content type (that server speaks gRPC-Web), not another status; and a request
// without a sentTrace (a stream's) is left alone.
func TestNoteGRPCOnly(t *testing.T) {
	for _, tc := range []struct {
		name         string
		req, res     string // content types
		status       int
		wantGRPCOnly bool
	}{
		{"connect request, grpc-go's answer", "application/proto", "application/grpc", http.StatusUnsupportedMediaType, true},
		{"gRPC-Web request, grpc-go's answer", "application/grpc-web+proto", "application/grpc", http.StatusUnsupportedMediaType, true},
		{"gRPC-Web request, 415 as gRPC+proto", "application/grpc-web+proto", "application/grpc+proto", http.StatusUnsupportedMediaType, true},
		{"gRPC-Web request, 415 as gRPC-Web", "application/grpc-web+proto", "application/grpc-web+proto", http.StatusUnsupportedMediaType, false},
		{"gRPC-Web request, 415 as gRPC-Web with no codec", "application/grpc-web", "application/grpc-web", http.StatusUnsupportedMediaType, false},
		{"gRPC request", "application/grpc+proto", "application/grpc", http.StatusUnsupportedMediaType, false},
		{"gRPC-Web request, another status", "application/grpc-web+proto", "application/grpc", http.StatusNotFound, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sent sentTrace
			req, err := http.NewRequestWithContext(sent.context(context.Background()), http.MethodPost, "http://server/log.v1.Log/GetServers", http.NoBody)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tc.req)
			res := &http.Response{StatusCode: tc.status, Header: http.Header{"Content-Type": {tc.res}}}
			noteGRPCOnly(req, res)
			if got := sent.grpcOnly.Load(); got != tc.wantGRPCOnly {
				t.Errorf("request %s answered %d %s: gRPC only %v, want %v", tc.req, tc.status, tc.res, got, tc.wantGRPCOnly)
			}
		})
	}
	req, err := http.NewRequest(http.MethodPost, "http://server/log.v1.Log/ConsumeStream", http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc-web+proto")
	noteGRPCOnly(req, &http.Response{StatusCode: http.StatusUnsupportedMediaType, Header: http.Header{"Content-Type": {"application/grpc"}}})
}
