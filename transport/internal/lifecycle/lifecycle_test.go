package lifecycle

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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

func TestBindWatch(t *testing.T) {
	s := NewStopper()
	// Final before Stop: ends at Stop.
	early, we, cancelEarly := s.BindWatch(context.Background())
	defer cancelEarly()
	we.Sent(true)
	// Not final at Stop: ends once a final status is sent, not before.
	late, wl, cancelLate := s.BindWatch(context.Background())
	defer cancelLate()
	wl.Sent(true)
	wl.Sent(false) // SERVING again
	// Never final: ends WatchGrace after Stop.
	never, _, cancelNever := s.BindWatch(context.Background())
	defer cancelNever()
	// Canceled by its owner: ends at once.
	own, _, cancelOwn := s.BindWatch(context.Background())
	cancelOwn()
	if own.Err() == nil {
		t.Fatal("cancel did not cancel its context")
	}
	if early.Err() != nil || late.Err() != nil || never.Err() != nil {
		t.Fatal("ended before Stop")
	}
	stopped := time.Now()
	s.Stop()
	<-early.Done()
	time.Sleep(50 * time.Millisecond)
	if late.Err() != nil {
		t.Fatal("a watch whose last status was not final ended at Stop")
	}
	wl.Sent(false)
	time.Sleep(10 * time.Millisecond)
	if late.Err() != nil {
		t.Fatal("a watch ended on a status that is not final")
	}
	wl.Sent(true)
	<-late.Done()
	<-never.Done()
	if d := time.Since(stopped); d < WatchGrace {
		t.Fatalf("a watch that sent no final status ended %v after Stop, before WatchGrace", d)
	}
	bound, _, cancelBound := s.BindWatch(context.Background())
	defer cancelBound()
	<-bound.Done() // bound after Stop: ends (within WatchGrace)
}

func TestFinalHealthStatus(t *testing.T) {
	for _, c := range []struct {
		m    any
		want bool
	}{
		{&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, false},
		{&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, true},
		{&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVICE_UNKNOWN}, true},
		{&healthpb.HealthCheckRequest{Service: "x"}, false},
		{otherPackageHealth(t, 2), true}, // NOT_SERVING, as connectrpc.com/grpchealth generates it
		{otherPackageHealth(t, 1), false},
		{"not a message", false},
	} {
		if got := FinalHealthStatus(c.m); got != c.want {
			t.Errorf("FinalHealthStatus(%v) = %v, want %v", c.m, got, c.want)
		}
	}
}

// otherPackageHealth is a HealthCheckResponse with the given status generated in another
// proto package (connectext.grpc.health.v1, as connectrpc.com/grpchealth has it).
func otherPackageHealth(t *testing.T, status int32) proto.Message {
	t.Helper()
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:    proto.String("connectext/health.proto"),
		Package: proto.String("connectext.grpc.health.v1"),
		Syntax:  proto.String("proto3"),
		EnumType: []*descriptorpb.EnumDescriptorProto{{
			Name: proto.String("ServingStatus"),
			Value: []*descriptorpb.EnumValueDescriptorProto{
				{Name: proto.String("SERVING_STATUS_UNKNOWN"), Number: proto.Int32(0)},
				{Name: proto.String("SERVING_STATUS_SERVING"), Number: proto.Int32(1)},
				{Name: proto.String("SERVING_STATUS_NOT_SERVING"), Number: proto.Int32(2)},
			},
		}},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("HealthCheckResponse"),
			Field: []*descriptorpb.FieldDescriptorProto{{
				Name: proto.String("status"), Number: proto.Int32(1),
				Type:     descriptorpb.FieldDescriptorProto_TYPE_ENUM.Enum(),
				TypeName: proto.String(".connectext.grpc.health.v1.ServingStatus"),
				Label:    descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			}},
		}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	md := fd.Messages().ByName("HealthCheckResponse")
	m := dynamicpb.NewMessage(md)
	m.Set(md.Fields().ByName("status"), protoreflect.ValueOfEnum(protoreflect.EnumNumber(status)))
	return m
}
