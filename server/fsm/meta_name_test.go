package fsm

import (
	"strings"
	"testing"
)

// TestTopicNameErrorNamesCharacter: a topic name with a non-ASCII character was refused
// naming one of its bytes as a character ("é" as 'Ã'), which is not in the name.
func TestTopicNameErrorNamesCharacter(t *testing.T) {
	for name, want := range map[string]string{
		"café":     "character 'é'",
		"a\x00b":   `character '\x00'`,
		"a\xffb":   "byte 0xff (not UTF-8)",
		"orders/1": "character '/'",
	} {
		err := ValidateTopicName(name)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateTopicName(%q) = %v, want an error saying %s", name, err, want)
		}
	}
}
