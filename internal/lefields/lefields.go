// Package lefields decodes little-endian fixed-size fields, as the squashfs
// superblock and inodes and the packed-file trailer store them.
package lefields

import (
	"encoding/binary"
	"io"
)

// Parser decodes little-endian fields from a byte slice with a sticky error,
// so a sequence of reads needs one check at the end.
type Parser struct {
	B   []byte // what is left to read
	Err error  // the first error; later reads return zero values
}

// Bytes returns the next n bytes (aliasing B).
func (p *Parser) Bytes(n int) []byte {
	if p.Err != nil || n < 0 || n > len(p.B) {
		if p.Err == nil {
			p.Err = io.ErrUnexpectedEOF
		}
		return nil
	}
	v := p.B[:n]
	p.B = p.B[n:]
	return v
}

// U16 returns the next little-endian uint16.
func (p *Parser) U16() uint16 {
	if b := p.Bytes(2); p.Err == nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

// U32 returns the next little-endian uint32.
func (p *Parser) U32() uint32 {
	if b := p.Bytes(4); p.Err == nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

// U64 returns the next little-endian uint64.
func (p *Parser) U64() uint64 {
	if b := p.Bytes(8); p.Err == nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// Str returns a string stored as a uint16 length and its bytes.
func (p *Parser) Str() string {
	n := int(p.U16())
	b := p.Bytes(n)
	if p.Err != nil {
		return ""
	}
	return string(b)
}
