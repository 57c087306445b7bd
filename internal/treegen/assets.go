package treegen

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// AssetStats summarises GenerateAssets.
type AssetStats struct {
	Files int
	Bytes int64
}

// GenerateAssets fills dir with a realistic asset tree of about total bytes:
// compressible text, JSON and source-like files, incompressible (already
// compressed, e.g. images and archives) files, some duplicates and a few
// mostly-zero files, in a few thousand files across nested directories.
func GenerateAssets(dir string, seed int64, total int64) (AssetStats, error) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xa55e7))
	var st AssetStats
	var prev []content
	// sections weighted as in a typical application's asset directory;
	// the mean file is about 0.5 MB, so 1 GiB makes a couple of thousand
	sections := []string{
		"src", "src", "src", "src", "src", "src", "src", "docs", "docs",
		"vendor", "vendor", "vendor", "data", "data", "data",
		"textures", "textures", "textures", "audio", "models",
	}
	for st.Bytes < total {
		sec := sections[rng.IntN(len(sections))]
		d := filepath.Join(dir, sec, fmt.Sprintf("g%02d", rng.IntN(20)), fmt.Sprintf("p%02d", rng.IntN(8)))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return st, err
		}
		var c content
		var ext string
		switch sec {
		case "src", "docs", "vendor":
			c = content{kind: 't', size: 200 + rng.Int64N(60<<10)}
			ext = map[string]string{"src": ".go", "docs": ".md", "vendor": ".c"}[sec]
		case "data":
			c = content{kind: 't', size: 1<<10 + rng.Int64N(1<<20)}
			ext = ".json"
		case "textures":
			c = content{kind: 'r', size: 16<<10 + rng.Int64N(1500<<10)}
			ext = ".png"
		case "audio":
			c = content{kind: 'r', size: 100<<10 + rng.Int64N(2<<20)}
			ext = ".ogg"
		case "models":
			// weights: random regions between long zero runs
			sz := 1<<20 + rng.Int64N(7<<20)
			c = content{kind: 's', size: sz, regions: [][2]int64{{0, sz / 3}, {sz / 2, sz / 4}}}
			ext = ".bin"
		}
		c.seed = rng.Uint64()
		if len(prev) > 0 && rng.IntN(20) == 0 {
			c = prev[rng.IntN(len(prev))] // a duplicate
		} else if c.size < 8<<20 {
			prev = append(prev, c)
		}
		if st.Bytes+c.size > total && st.Files > 0 {
			c.size = max(1, total-st.Bytes)
			c.regions = nil
			if c.kind == 's' {
				c.kind = 'z'
			}
		}
		name := filepath.Join(d, fmt.Sprintf("f%05d%s", st.Files, ext))
		if err := writeContent(name, c); err != nil {
			return st, err
		}
		mt := time.Unix(1500000000+rng.Int64N(200000000), 0)
		if err := os.Chtimes(name, mt, mt); err != nil {
			return st, err
		}
		st.Files++
		st.Bytes += c.size
	}
	return st, nil
}
