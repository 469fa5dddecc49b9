package serf

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// GenerateKey returns a new random 32-byte (AES-256) gossip encryption key, base64-encoded
// (standard encoding), ready for Config.EncryptKey.
// Errors: only if the system's random source fails.
func GenerateKey() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("discovery/serf: generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(key), nil
}
