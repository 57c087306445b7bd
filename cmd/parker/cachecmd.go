package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/parkerpack/parker/cache"
	"github.com/parkerpack/parker/internal/human"
)

// cacheCmd runs `parker cache list` and `parker cache gc`, on the cache
// directory a run would use (cache.Locate).
func cacheCmd(c *config, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "parker: cache %s: %v\n", c.cache, err)
		return exitFail
	}
	cc, err := cache.Locate(os.Getenv)
	if err != nil {
		return fail(err)
	}
	if c.cache == "list" {
		all, err := cc.List()
		if err != nil {
			return fail(err)
		}
		var total int64
		fmt.Fprintf(stdout, "%-12s  %-20s  %10s  %-20s  %s\n", "DIGEST", "TARGET", "SIZE", "LAST USE", "IN USE")
		for _, in := range all {
			total += in.Size
			use := "no"
			if in.InUse {
				use = "yes"
			}
			fmt.Fprintf(stdout, "%-12s  %-20s  %10s  %-20s  %s\n", in.Digest[:12], in.Target, human.Bytes(in.Size),
				in.LastUse.UTC().Format("2006-01-02 15:04 UTC"), use)
		}
		if !c.quiet {
			fmt.Fprintf(stderr, "parker: %d entries, %s, in %s\n", len(all), human.Bytes(total), cc.Dir)
		}
		return exitOK
	}
	removed, err := cc.GC(c.gc)
	var freed int64
	for _, in := range removed {
		freed += in.Size
		if c.verbose {
			fmt.Fprintf(stderr, "parker: removed %s %s (%s, last used %s ago)\n", in.Digest[:12], in.Target,
				human.Bytes(in.Size), time.Since(in.LastUse).Round(time.Second))
		}
	}
	if !c.quiet {
		fmt.Fprintf(stderr, "parker: removed %d entries, %s, from %s\n", len(removed), human.Bytes(freed), cc.Dir)
	}
	if err != nil {
		return fail(err)
	}
	return exitOK
}
