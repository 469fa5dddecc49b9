package lifecycle

import (
	"context"
	"testing"
)

func TestStopper(t *testing.T) {
	s := NewStopper()
	bound, cancel := s.Bind(context.Background())
	defer cancel()
	other, cancelOther := s.Bind(context.Background())
	cancelOther() // unbinding one context leaves the others bound
	if other.Err() == nil {
		t.Fatal("cancel did not cancel its context")
	}
	if bound.Err() != nil || s.Stopped() {
		t.Fatal("stopped before Stop")
	}
	if !s.Stop() {
		t.Fatal("first Stop reported not first")
	}
	if s.Stop() {
		t.Fatal("second Stop reported first")
	}
	<-bound.Done()
	<-s.Done()
	if !s.Stopped() {
		t.Fatal("Stopped false after Stop")
	}
	late, cancelLate := s.Bind(context.Background())
	defer cancelLate()
	<-late.Done() // bound after Stop: already canceled
}
