package static_test

import (
	"testing"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/discoverytest"
	"github.com/commitlog-go/commitlog/discovery/static"
)

func TestConformance(t *testing.T) {
	discoverytest.Conformance(t, func(t *testing.T, name string, tags map[string]string, h discovery.Handler) discovery.Membership {
		m, err := static.New(static.Config{
			Local:   discovery.Member{Name: name, Addr: "127.0.0.1:8401", Tags: tags},
			Peers:   []discovery.Member{{Name: name + "-peer", Addr: "127.0.0.1:8411"}},
			Handler: h,
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	})
}
