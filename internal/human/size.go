package human

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// units are the multiples a size may end in, binary, largest first; "KB"
// and "KiB" mean the same as "K", and so on, in any case.
var units = []struct {
	name  string
	shift uint
}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}}

// ParseSize reads a byte count: a number, whole or with a decimal
// fraction, optionally followed by K, M, G or T (binary multiples; KB and
// KiB mean K, and so on; B means bytes), in any case, with spaces around
// it allowed. A fraction of a byte is dropped (1.5K is 1536, 0.1K is 102).
// It fails on anything else, on more than 18 decimals, and on a count that
// does not fit an int64.
func ParseSize(s string) (int64, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	num := strings.TrimRight(u, "KMGTIB ")
	unit := strings.TrimSpace(u[len(num):])
	shift, ok := uint(0), unit == "" || unit == "B"
	for _, x := range units {
		if unit == x.name || unit == x.name+"B" || unit == x.name+"IB" {
			shift, ok = x.shift, true
		}
	}
	whole, frac, dot := strings.Cut(num, ".")
	if !ok || !digits(whole) || !digits(frac) || whole == "" && frac == "" || dot && frac == "" || len(frac) > 18 {
		return 0, fmt.Errorf("invalid size %q (want e.g. 1048576, 128K, 100M or 1.5G)", s)
	}
	tooLarge := fmt.Errorf("size %q too large", s)
	var n uint64
	if whole != "" {
		w, err := strconv.ParseUint(whole, 10, 64)
		if err != nil || w > math.MaxInt64>>shift {
			return 0, tooLarge
		}
		n = w << shift
	}
	if frac != "" {
		// floor(frac / 10^len * 2^shift), in 128 bits: frac < 10^len, so
		// the quotient fits.
		f, _ := strconv.ParseUint(frac, 10, 64)
		den := uint64(1)
		for range frac {
			den *= 10
		}
		hi, lo := bits.Mul64(f, 1<<shift)
		q, _ := bits.Div64(hi, lo, den)
		n += q
	}
	if n > math.MaxInt64 {
		return 0, tooLarge
	}
	return int64(n), nil
}

func digits(s string) bool {
	return strings.Trim(s, "0123456789") == ""
}

// FormatSize writes n in the largest unit that holds it exactly, as
// ParseSize reads it: 100M, 1536K, 1G, 12345.
func FormatSize(n int64) string {
	for _, u := range units {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}
