package serf_test

import (
	"testing"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/discoverytest"
	"github.com/commitlog-go/commitlog/discovery/serf"
)

func TestConformance(t *testing.T) {
	discoverytest.Conformance(t, func(t *testing.T, name string, tags map[string]string, h discovery.Handler) discovery.Membership {
		return startNode(t, name, serf.Config{Tags: tags, Handler: h}).m
	})
}
