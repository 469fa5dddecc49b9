package loadgen

import (
	"testing"
	"time"
)

func TestPayloadRoundTrip(t *testing.T) {
	sent := time.Unix(1700000000, 123456789)
	tests := []struct {
		name string
		size int
		flip int // byte to corrupt, -1 for none
		want verdict
	}{
		{"empty value is foreign", 0, -1, valueForeign},
		{"short value is foreign", HeaderSize - 1, -1, valueForeign},
		{"header only", HeaderSize, -1, valueOK},
		{"100 bytes", 100, -1, valueOK},
		{"1 MiB", 1 << 20, -1, valueOK},
		{"flip in filler", 100, 50, valueCorrupt},
		{"flip in timestamp", 100, 5, valueCorrupt},
		{"flip in checksum", 100, 13, valueCorrupt},
		{"flip in magic", 100, 0, valueForeign},
		{"flip in last byte", 100, 99, valueCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newPayload(tt.size).value(sent)
			if len(v) != tt.size {
				t.Fatalf("len = %d, want %d", len(v), tt.size)
			}
			if tt.flip >= 0 {
				v[tt.flip] ^= 0x10
			}
			got, ts := inspect(v)
			if got != tt.want {
				t.Fatalf("inspect = %v, want %v", got, tt.want)
			}
			if got == valueOK && !ts.Equal(sent) {
				t.Fatalf("send time = %v, want %v", ts, sent)
			}
		})
	}
}

func TestPayloadValuesAreIndependent(t *testing.T) {
	p := newPayload(64)
	a := p.value(time.Unix(1, 0))
	b := p.value(time.Unix(2, 0))
	a[20] ^= 0xFF
	if v, _ := inspect(b); v != valueOK {
		t.Fatal("changing one value changed another")
	}
}
