// Package human formats quantities for people: the progress line, the
// summary line and inspect's output share it.
package human

import (
	"fmt"
	"strconv"
)

// Bytes formats n in binary units with one decimal: 512 B, 4.1 MiB.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
