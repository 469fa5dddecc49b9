package client_test

import (
	"context"
	"errors"
	"testing"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
)

// TestGroupConsumerRefusals: a group consumer needs a group and topics, and a server without
// consumer groups (the fake log serves none) is reported as such. The group protocol itself is
// tested end to end against real servers in the server module (TestGroupsSDKConsumers).
func TestGroupConsumerRefusals(t *testing.T) {
	forEachFake(t, func(t *testing.T, _ *clienttest.Log, cl *client.Client) {
		ctx := context.Background()
		if _, err := cl.NewGroupConsumer(ctx, "", []string{"t"}); !errors.Is(err, client.ErrInvalidOption) {
			t.Errorf("no group: %v", err)
		}
		if _, err := cl.NewGroupConsumer(ctx, "g", nil); !errors.Is(err, client.ErrInvalidOption) {
			t.Errorf("no topics: %v", err)
		}
		if _, err := cl.NewGroupConsumer(ctx, "g", []string{"t"}, client.WithAutoCommit(-1)); !errors.Is(err, client.ErrInvalidOption) {
			t.Errorf("negative auto-commit: %v", err)
		}
		if _, err := cl.NewGroupConsumer(ctx, "g", []string{"t"}); !errors.Is(err, client.ErrGroupsUnsupported) {
			t.Errorf("a server without groups: %v, want ErrGroupsUnsupported", err)
		}
		if _, err := cl.ListGroups(ctx); !errors.Is(err, client.ErrGroupsUnsupported) {
			t.Errorf("ListGroups on a server without groups: %v", err)
		}
		if _, _, err := cl.ResetGroupOffsets(ctx, "g", client.ResetRequest{Topic: "t"}); !errors.Is(err, client.ErrInvalidOption) {
			t.Errorf("a reset without a verb: %v", err)
		}
	})
}
