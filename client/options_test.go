package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// TestNewRejectsInvalidOptions: New refuses an option out of range before it dials anything,
// with an error that wraps ErrInvalidOption and names the option.
func TestNewRejectsInvalidOptions(t *testing.T) {
	tests := []struct {
		option string
		opt    client.Option
	}{
		{"WithTransport", client.WithTransport("smoke-signals")},
		{"WithReadPolicy", client.WithReadPolicy(client.ReadPolicy(9))},
		{"WithRequestTimeout", client.WithRequestTimeout(-time.Second)},
		{"WithRefreshInterval", client.WithRefreshInterval(-time.Second)},
		{"WithMaxMessageBytes", client.WithMaxMessageBytes(-1)},
		{"WithMaxRetries", client.WithMaxRetries(-1)},
		{"WithBackoff", client.WithBackoff(0, time.Second)},
		{"WithBackoff", client.WithBackoff(time.Second, time.Millisecond)},
	}
	for _, tt := range tests {
		t.Run(tt.option, func(t *testing.T) {
			// Port 1 of loopback: a dial would fail with ErrUnavailable, not ErrInvalidOption.
			c, err := client.New(context.Background(), []string{"127.0.0.1:1"}, tt.opt)
			if c != nil || !errors.Is(err, client.ErrInvalidOption) || !strings.Contains(err.Error(), tt.option+":") {
				t.Fatalf("New = %v, %v; want ErrInvalidOption naming %s", c, err, tt.option)
			}
		})
	}
}

// TestNewWithNilLogger: WithLogger(nil) is the default, discarding logger, not a crash later.
func TestNewWithNilLogger(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil, client.WithLogger(nil))
		if _, err := cl.Produce(context.Background(), []byte("x")); err != nil {
			t.Fatal(err)
		}
	})
}
