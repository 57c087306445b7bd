// Package ldcache reads and writes the loader cache of glibc
// (/etc/ld.so.cache). It depends on nothing but the standard library, so
// the lean run-time stub can look a library up in it.
package ldcache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// The loader's cache (glibc's /etc/ld.so.cache), as ldconfig writes it:
// the "new" format, alone (glibc 2.32 on) or after the old one:
//
//	header: "glibc-ld.so.cache" "1.1", nlibs u32, len_strings u32,
//	        flags u8 (2: little-endian), 3 bytes, extension_offset u32,
//	        3 unused u32                                  (48 bytes)
//	entries: flags i32, key u32, value u32, osversion u32, hwcap u64
//	        (24 bytes each), sorted by key, largest first (Cmp)
//	strings: key (a soname) and value (a path), NUL-terminated; offsets
//	        from the header's start
//
// Path is where the loader reads its cache.
const Path = "/etc/ld.so.cache"

const (
	cacheMagicOld  = "ld.so-1.7.0"
	cacheMagicNew  = "glibc-ld.so.cache1.1"
	cacheHeaderNew = 48
	cacheEntryNew  = 24
	cacheEntryOld  = 12
	cacheLE        = 2 // header flags: little-endian
)

// Entry flags: the ELF ABI of the library (glibc's FLAG_*).
const (
	FlagELFLibc6    = 0x0003
	FlagX8664Lib64  = 0x0300
	FlagAArch64Lib6 = 0x0a00
)

// Entry is one library the loader's cache names.
type Entry struct {
	Flags  int32
	Soname string
	Path   string
	HWCap  uint64
}

// Parse reads a loader cache (old and new format, or new alone) and
// returns the new format's entries in their order.
func Parse(b []byte) ([]Entry, error) {
	start := 0
	if bytes.HasPrefix(b, []byte(cacheMagicOld)) {
		if len(b) < 16 {
			return nil, errors.New("loader cache: cut short")
		}
		n := int(binary.LittleEndian.Uint32(b[12:]))
		if n < 0 || n > len(b)/cacheEntryOld {
			return nil, errors.New("loader cache: damaged")
		}
		start = (16 + n*cacheEntryOld + 7) &^ 7
	}
	if start > len(b) || !bytes.HasPrefix(b[start:], []byte(cacheMagicNew)) {
		return nil, errors.New("loader cache: not in glibc's format (glibc-ld.so.cache1.1)")
	}
	c := b[start:]
	if len(c) < cacheHeaderNew {
		return nil, errors.New("loader cache: cut short")
	}
	n := int(binary.LittleEndian.Uint32(c[20:]))
	if n < 0 || n > (len(c)-cacheHeaderNew)/cacheEntryNew {
		return nil, errors.New("loader cache: damaged")
	}
	str := func(off uint32) (string, error) {
		if int(off) >= len(c) {
			return "", errors.New("loader cache: string past the end")
		}
		s := c[off:]
		i := bytes.IndexByte(s, 0)
		if i < 0 {
			return "", errors.New("loader cache: string past the end")
		}
		return string(s[:i]), nil
	}
	out := make([]Entry, 0, n)
	for i := range n {
		p := c[cacheHeaderNew+i*cacheEntryNew:]
		k, err := str(binary.LittleEndian.Uint32(p[4:]))
		if err != nil {
			return nil, err
		}
		v, err := str(binary.LittleEndian.Uint32(p[8:]))
		if err != nil {
			return nil, err
		}
		out = append(out, Entry{Flags: int32(binary.LittleEndian.Uint32(p)), Soname: k, Path: v,
			HWCap: binary.LittleEndian.Uint64(p[16:])})
	}
	return out, nil
}

// Write writes a loader cache in the new format naming entries
// (none with the same soname and flags twice), sorted as the loader's
// binary search needs them.
func Write(entries []Entry) ([]byte, error) {
	es := append([]Entry(nil), entries...)
	sort.SliceStable(es, func(i, j int) bool {
		if c := Cmp(es[i].Soname, es[j].Soname); c != 0 {
			return c > 0
		}
		return es[i].Flags > es[j].Flags
	})
	for i := 1; i < len(es); i++ {
		if es[i].Soname == es[i-1].Soname && es[i].Flags == es[i-1].Flags && es[i].HWCap == es[i-1].HWCap {
			return nil, fmt.Errorf("two libraries named %s: %s and %s", es[i].Soname, es[i-1].Path, es[i].Path)
		}
	}
	le := binary.LittleEndian
	var strs bytes.Buffer
	strAt := map[string]uint32{}
	base := uint32(cacheHeaderNew + len(es)*cacheEntryNew)
	intern := func(s string) uint32 {
		if off, ok := strAt[s]; ok {
			return off
		}
		off := base + uint32(strs.Len())
		strs.WriteString(s)
		strs.WriteByte(0)
		strAt[s] = off
		return off
	}
	b := make([]byte, 0, int(base)+64*len(es))
	b = append(b, cacheMagicNew...)
	b = le.AppendUint32(b, uint32(len(es)))
	lenAt := len(b)
	b = le.AppendUint32(b, 0) // len_strings, below
	b = append(b, cacheLE, 0, 0, 0)
	b = le.AppendUint32(b, 0) // no extension
	b = append(b, make([]byte, 12)...)
	for _, e := range es {
		b = le.AppendUint32(b, uint32(e.Flags))
		b = le.AppendUint32(b, intern(e.Soname))
		b = le.AppendUint32(b, intern(e.Path))
		b = le.AppendUint32(b, 0)
		b = le.AppendUint64(b, e.HWCap)
	}
	le.PutUint32(b[lenAt:], uint32(strs.Len()))
	return append(b, strs.Bytes()...), nil
}

// Cmp compares two sonames as the loader's cache does
// (_dl_cache_libcmp): runs of digits by their value, the rest byte by
// byte, a digit after anything else.
func Cmp(a, b string) int {
	digit := func(c byte) bool { return c >= '0' && c <= '9' }
	i, j := 0, 0
	for i < len(a) {
		switch {
		case digit(a[i]) && j < len(b) && digit(b[j]):
			var x, y int64
			for ; i < len(a) && digit(a[i]); i++ {
				x = x*10 + int64(a[i]-'0')
			}
			for ; j < len(b) && digit(b[j]); j++ {
				y = y*10 + int64(b[j]-'0')
			}
			if x != y {
				return cmpInt(x, y)
			}
		case digit(a[i]):
			return 1
		case j < len(b) && digit(b[j]):
			return -1
		case j >= len(b) || a[i] != b[j]:
			var c byte
			if j < len(b) {
				c = b[j]
			}
			return int(a[i]) - int(c)
		default:
			i++
			j++
		}
	}
	if j < len(b) {
		return -int(b[j])
	}
	return 0
}

func cmpInt(x, y int64) int {
	if x < y {
		return -1
	}
	return 1
}
