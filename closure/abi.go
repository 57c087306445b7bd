package closure

import (
	"debug/elf"

	"github.com/parkerpack/parker/internal/ldcache"
)

// abiFlags are the cache flags of libraries of e's ABI, for those the
// host's cache does not name; 0 where parker does not know them.
func abiFlags(class elf.Class, m elf.Machine) int32 {
	switch {
	case class == elf.ELFCLASS64 && m == elf.EM_X86_64:
		return ldcache.FlagELFLibc6 | ldcache.FlagX8664Lib64
	case class == elf.ELFCLASS64 && m == elf.EM_AARCH64:
		return ldcache.FlagELFLibc6 | ldcache.FlagAArch64Lib6
	case class == elf.ELFCLASS32 && m == elf.EM_386:
		return ldcache.FlagELFLibc6
	}
	return 0
}
