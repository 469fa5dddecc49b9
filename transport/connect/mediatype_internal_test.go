package connect

import "testing"

// TestMediaType: mediaType drops parameters, surrounding spaces and case, and keeps the rest
// (a suffix such as +json, or an unknown type) for knownMediaType and the hints to judge.
func TestMediaType(t *testing.T) {
	for _, tc := range []struct{ ct, want string }{
		{"", ""},
		{"application/json", "application/json"},
		{"application/json; charset=utf-8", "application/json"},
		{"application/json;charset=utf-8", "application/json"},
		{"Application/JSON", "application/json"},
		{"  application/proto  ", "application/proto"},
		{" APPLICATION/Connect+JSON ; charset=utf-8", "application/connect+json"},
		{"application/grpc-web+proto;a=b;c=d", "application/grpc-web+proto"},
		{"application/x-www-form-urlencoded", "application/x-www-form-urlencoded"},
		{"; charset=utf-8", ""},
		{"text/plain;", "text/plain"},
	} {
		if got := mediaType(tc.ct); got != tc.want {
			t.Errorf("mediaType(%q) = %q, want %q", tc.ct, got, tc.want)
		}
	}
}
