package trailer

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzRead: Read never panics, and whatever it accepts
// MarshalBinary encodes and Read reads back unchanged.
func FuzzRead(f *testing.F) {
	tr := Trailer{
		Flags: KeepOwner, StubSize: 1234, Offset: 2 * PadSize, Size: PadSize,
		Target: "bin/app", Compression: "zstd", Level: 3, BlockSize: 128 << 10, CreatedBy: "parker test",
	}
	tr.Digest[0], tr.Digest[31] = 0xaa, 0x55
	body, err := tr.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	valid := append(make([]byte, 3*PadSize), body...)
	f.Add(valid)
	f.Add(body)
	withHelper := tr
	withHelper.Offset, withHelper.HelperOffset, withHelper.HelperSize, withHelper.HelperRawSize = 4*PadSize, 2*PadSize, 1000, 3000
	if b, err := withHelper.MarshalBinary(); err == nil {
		f.Add(append(make([]byte, 5*PadSize), b...))
	} else {
		f.Fatal(err)
	}
	limited := tr
	limited.Limits = Limits{Memory: 100 << 20, MilliCPUs: 1500, Pids: 50}
	if b, err := limited.MarshalBinary(); err == nil {
		f.Add(append(make([]byte, 3*PadSize), b...))
	} else {
		f.Fatal(err)
	}
	needs := tr
	needs.Needs = []Need{{Flags: 0x303, Soname: "libz.so.1", Path: "/lib/x86_64-linux-gnu/libz.so.1"}, {Flags: 0x303, Soname: "libm.so.6", Path: "/usr/lib/libm.so.6"}}
	if b, err := needs.MarshalBinary(); err == nil {
		f.Add(append(make([]byte, 3*PadSize), b...))
	} else {
		f.Fatal(err)
	}
	v2 := tr
	v2.Version = 2
	if b, err := v2.MarshalBinary(); err == nil {
		f.Add(append(make([]byte, 3*PadSize), b...))
	} else {
		f.Fatal(err)
	}
	v1 := tr
	v1.Version = 1
	if b, err := v1.MarshalBinary(); err == nil {
		f.Add(append(make([]byte, 3*PadSize), b...))
	} else {
		f.Fatal(err)
	}
	f.Add(valid[:len(valid)-1])
	f.Add([]byte(Magic))
	for _, i := range []int{0, 2, 4, 20, 60, len(body) - 17, len(body) - 12, len(body) - 9} {
		b := bytes.Clone(valid)
		b[3*PadSize+i] ^= 0x41
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, ErrTrailer) && !errors.Is(err, ErrNoTrailer) {
				t.Fatalf("Read: %v", err)
			}
			return
		}
		enc, err := got.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of an accepted trailer: %v", err)
		}
		// Replace the trailer with the re-encoding; later versions may
		// have a longer body, so the lengths need not match.
		bodyLen := int(uint32(b[len(b)-16]) | uint32(b[len(b)-15])<<8 | uint32(b[len(b)-14])<<16 | uint32(b[len(b)-13])<<24)
		again := append(bytes.Clone(b[:len(b)-FooterSize-bodyLen]), enc...)
		back, err := Read(bytes.NewReader(again), int64(len(again)))
		if err != nil {
			t.Fatalf("Read of the re-encoding: %v", err)
		}
		if !reflect.DeepEqual(got, back) {
			t.Fatalf("round trip changed the trailer:\n%+v\n%+v", got, back)
		}
		// The encoding is canonical: an accepted trailer re-encodes to the
		// bytes it was read from, every field kept as it was. Only body
		// bytes past the fields this version defines (room for later
		// versions) are dropped.
		orig := b[len(b)-FooterSize-bodyLen:]
		encBody, origBody := enc[:len(enc)-FooterSize], orig[:bodyLen]
		if !bytes.HasPrefix(origBody, encBody) {
			t.Fatalf("re-encoded body differs from the one read:\n%x\n%x", encBody, origBody)
		}
		if len(encBody) == bodyLen && !bytes.Equal(enc, orig) {
			t.Fatalf("re-encoded trailer differs from the one read:\n%x\n%x", enc, orig)
		}
	})
}
