package human

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"131072": 131072, "128K": 128 << 10, "128k": 128 << 10, "128KiB": 128 << 10, "128KB": 128 << 10,
		"1M": 1 << 20, "1m": 1 << 20, "1MiB": 1 << 20, "4096": 4096, "4096B": 4096, " 64K ": 64 << 10,
		"1G": 1 << 30, "1.5G": 3 << 29, ".5K": 512, "0.1K": 102, "2T": 2 << 40, "0": 0, "100 M": 100 << 20,
		"8589934591G": 8589934591 << 30, "1.5": 1, "0.000000000000909494T": 0, "0.999999999999999999K": 1023,
		"8589934591.999999999G": 8589934591<<30 + 1073741822,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "K", "-1", "12Q", "0x100", "1 M B", "1.", ".", "1..5M", "1e6", "+1", "1,5M",
		"M1", "1KK", "1IB", "9223372036854775808", "8589934592G", "1 000", "0.0000000000009094947017729282379150390625T"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0", 1: "1", 1023: "1023", 1024: "1K", 1536: "1536", 3 << 29: "1536M", 100 << 20: "100M", 1 << 40: "1T",
	} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// FuzzParseSize: any input gives an error or a size that its decimal form
// and FormatSize give back, and that does not depend on the case of the
// unit.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"131072", "128K", "1M", "1MiB", "", "K", "-1", "99999999999G", "1e6", "2047M", "0", "1.5g", ".5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		for _, again := range []string{strconv.FormatInt(n, 10), FormatSize(n), strings.ToLower(s)} {
			if m, err := ParseSize(again); err != nil || m != n {
				t.Fatalf("ParseSize(%q) = %d, but ParseSize(%q) = %d, %v", s, n, again, m, err)
			}
		}
	})
}
