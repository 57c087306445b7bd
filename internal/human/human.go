// Package human words things for people: byte counts, which the progress
// line, the summary line and inspect's output share, and the cause of an
// error about a path, for the command line's own messages; and it reads
// byte counts as people type them in flags (ParseSize: 128K, 1.5G).
package human

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
)

// Bytes formats n in binary units with one decimal: 512 B, 4.1 MiB.
func Bytes(n int64) string {
	size, unit := Unit(n)
	if size == 1 {
		return strconv.FormatInt(n, 10) + " B"
	}
	return fmt.Sprintf("%.1f %s", float64(n)/float64(size), unit)
}

// Unit picks the binary unit Bytes shows n in, and its size in bytes: the
// largest unit not above n, so 1023 is "B" and 1024 "KiB".
func Unit(n int64) (int64, string) {
	const k = 1024
	if n < k {
		return 1, "B"
	}
	size, exp := int64(k), 0
	for m := n / k; m >= k && exp < 5; m /= k {
		size *= k
		exp++
	}
	return size, string("KMGTPE"[exp]) + "iB"
}

// Cause strips the *fs.PathError wrapper (whose path is often an absolute
// one the user never typed), leaving the errno for a message that names
// the path as the user wrote it.
func Cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
