package serf_test

import (
	"encoding/base64"
	"io"
	"testing"

	"github.com/hashicorp/memberlist"
	hserf "github.com/hashicorp/serf/serf"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/serf"
)

// A process that knows the gossip key is a member, and serf answers every member's key
// queries (what `serf keys` sends): it installed a key of its own on every node, made it the
// one they encrypt with and removed the configured key, so that a server started again with
// the configured key file (a restart, a new server) could no longer join: "no installed keys
// could decrypt the message". The configured key stays the only key.
func TestKeyHolderCannotReplaceTheKey(t *testing.T) {
	key := mustKey(t)
	a := startNode(t, "a", serf.Config{EncryptKey: key})
	b := startNode(t, "b", serf.Config{EncryptKey: key, StartJoinAddrs: []string{a.m.LocalMember().Addr}})
	waitAliveCount(t, a.m, 2)

	// The key holder: a plain serf agent with the key, driving serf's key manager.
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		t.Fatal(err)
	}
	conf := hserf.DefaultConfig()
	conf.NodeName = "key-holder"
	conf.LogOutput = io.Discard
	conf.MemberlistConfig = memberlist.DefaultLocalConfig()
	conf.MemberlistConfig.Name = conf.NodeName
	conf.MemberlistConfig.BindAddr = "127.0.0.1"
	conf.MemberlistConfig.BindPort = 0
	conf.MemberlistConfig.SecretKey = raw
	conf.MemberlistConfig.LogOutput = io.Discard
	holder, err := hserf.Create(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Shutdown() })
	if _, err := holder.Join([]string{a.m.LocalMember().Addr}, true); err != nil {
		t.Fatal(err)
	}
	waitAliveCount(t, a.m, 3)
	waitAliveCount(t, b.m, 3)
	own := mustKey(t)
	km := holder.KeyManager()
	if _, err := km.InstallKey(own); err != nil {
		t.Logf("install-key: %v", err)
	}
	if _, err := km.UseKey(own); err != nil {
		t.Logf("use-key: %v", err)
	}
	if _, err := km.RemoveKey(key); err != nil {
		t.Logf("remove-key: %v", err)
	}
	_ = holder.Shutdown()

	// A server started with the configured key joins (the nodes put their keyring back within
	// a moment: Join is tried again until then), and the others see it.
	c := startNode(t, "c", serf.Config{EncryptKey: key})
	addrs := []string{a.m.LocalMember().Addr, b.m.LocalMember().Addr}
	var joinErr error
	defer func() {
		if t.Failed() {
			t.Logf("the last Join: %v", joinErr)
		}
	}()
	poll(t, "a server with the configured key to join after a key holder replaced the key", func() bool {
		_, joinErr = c.m.Join(waitCtx(t), addrs)
		return joinErr == nil
	})
	poll(t, "c alive on a and b", func() bool {
		return memberStatus(a.m, "c") == discovery.StatusAlive && memberStatus(b.m, "c") == discovery.StatusAlive
	})
}
