package discovery_test

import (
	"errors"
	"io"
	"testing"

	"github.com/commitlog-go/commitlog/discovery"
)

func TestStatusString(t *testing.T) {
	tests := map[discovery.Status]string{
		discovery.StatusUnknown: "unknown(0)",
		discovery.StatusAlive:   "alive",
		discovery.StatusLeaving: "leaving",
		discovery.StatusLeft:    "left",
		discovery.StatusFailed:  "failed",
		discovery.Status(99):    "unknown(99)",
	}
	for s, want := range tests {
		if got := s.String(); got != want {
			t.Errorf("Status(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

func TestEventString(t *testing.T) {
	tests := []struct {
		e    discovery.Event
		want string
	}{
		{discovery.Event{Type: discovery.EventJoin, Member: discovery.Member{Name: "a", Addr: "127.0.0.1:1"}}, "join a 127.0.0.1:1"},
		{discovery.Event{Type: discovery.EventLeave, Member: discovery.Member{Name: "b"}}, "leave b "},
		{discovery.Event{Type: discovery.EventFailed}, "failed  "},
		{discovery.Event{Type: discovery.EventUpdate}, "update  "},
		{discovery.Event{Type: discovery.EventReap}, "reap  "},
		{discovery.Event{}, "unknown(0)  "},
	}
	for _, tt := range tests {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestJoinErrorMatchesAndUnwraps(t *testing.T) {
	err := error(&discovery.JoinError{Addrs: []string{"127.0.0.1:1"}, Err: io.EOF})
	if !errors.Is(err, discovery.ErrJoinFailed) {
		t.Error("JoinError is not ErrJoinFailed")
	}
	if !errors.Is(err, io.EOF) {
		t.Error("JoinError does not unwrap to its cause")
	}
	if errors.Is(err, discovery.ErrClosed) {
		t.Error("JoinError matches an unrelated sentinel")
	}
	if got, want := err.Error(), "discovery: could not join any of [127.0.0.1:1]: EOF"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestMemberCloneIsDeep(t *testing.T) {
	m := discovery.Member{Name: "a", Tags: map[string]string{"k": "v"}}
	c := m.Clone()
	c.Tags["k"] = "changed"
	if m.Tags["k"] != "v" {
		t.Error("Clone shares the Tags map")
	}
	if (discovery.Member{}).Clone().Tags != nil {
		t.Error("Clone of nil tags is not nil")
	}
}

func TestHandlerFunc(t *testing.T) {
	var got discovery.Event
	var h discovery.Handler = discovery.HandlerFunc(func(e discovery.Event) { got = e })
	h.HandleEvent(discovery.Event{Type: discovery.EventUpdate})
	if got.Type != discovery.EventUpdate {
		t.Errorf("HandlerFunc did not pass the event: %+v", got)
	}
}
