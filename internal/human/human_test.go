package human

import (
	"math"
	"testing"
)

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 1<<20 - 1: "1024.0 KiB",
		1 << 20: "1.0 MiB", 270 << 20: "270.0 MiB", 5 << 30: "5.0 GiB", 3 << 40: "3.0 TiB",
		5000 << 40: "4.9 PiB", math.MaxInt64: "8.0 EiB", -5: "-5 B",
	} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestUnit(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		size int64
		unit string
	}{
		{0, 1, "B"}, {1023, 1, "B"}, {1024, 1 << 10, "KiB"}, {1<<30 - 1, 1 << 20, "MiB"},
		{1 << 30, 1 << 30, "GiB"}, {1 << 50, 1 << 50, "PiB"}, {math.MaxInt64, 1 << 60, "EiB"},
	} {
		if size, unit := Unit(tt.n); size != tt.size || unit != tt.unit {
			t.Errorf("Unit(%d) = %d, %q, want %d, %q", tt.n, size, unit, tt.size, tt.unit)
		}
	}
}
