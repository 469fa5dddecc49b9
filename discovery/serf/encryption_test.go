package serf_test

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/serf"
)

func TestGenerateKey(t *testing.T) {
	k1, err := serf.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := serf.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(k1)
	if err != nil || len(raw) != 32 {
		t.Fatalf("key %q decodes to %d bytes (err %v), want 32", k1, len(raw), err)
	}
	if k1 == k2 {
		t.Fatal("two generated keys are equal")
	}
}

func TestEncryptionGatesJoin(t *testing.T) {
	key1 := mustKey(t)
	key2 := mustKey(t)
	key16 := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	tests := []struct {
		name             string
		seedKey, joinKey string
		wantJoin         bool
	}{
		{"same key", key1, key1, true},
		{"same 16-byte key", key16, key16, true},
		{"no encryption", "", "", true},
		{"wrong key", key1, key2, false},
		{"missing key against an encrypted cluster", key1, "", false},
		{"encrypted node against a plaintext cluster", "", key1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seed := startNode(t, "seed", serf.Config{EncryptKey: tt.seedKey})
			joiner := startNode(t, "joiner", serf.Config{EncryptKey: tt.joinKey})
			n, err := joiner.m.Join(waitCtx(t), []string{seed.m.LocalMember().Addr})
			if !tt.wantJoin {
				if n != 0 || !errors.Is(err, discovery.ErrJoinFailed) {
					t.Fatalf("Join = %d, %v; want 0, ErrJoinFailed", n, err)
				}
				if got := len(seed.m.Members()); got != 1 {
					t.Errorf("seed has %d members, want only itself", got)
				}
				if got := len(joiner.m.Members()); got != 1 {
					t.Errorf("joiner has %d members, want only itself", got)
				}
				return
			}
			if err != nil || n != 1 {
				t.Fatalf("Join = %d, %v; want 1, nil", n, err)
			}
			waitFor(t, seed.rec, discovery.EventJoin, "joiner")
			waitFor(t, joiner.rec, discovery.EventJoin, "seed")
		})
	}
}

func mustKey(t *testing.T) string {
	t.Helper()
	k, err := serf.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
