package trailer

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parkerpack/parker/image"
)

// TestHelperBounds: a helper must lie between the stub and the payload,
// and only version 2 carries one; version 1 trailers still read.
func TestHelperBounds(t *testing.T) {
	base := Trailer{StubSize: 100, Offset: 3 * PadSize, Size: PadSize, Target: "app", Compression: "zstd"}
	for _, tc := range []struct {
		name           string
		version        uint16
		off, size, raw uint64
		wantErr        bool
	}{
		{"none", 0, 0, 0, 0, false},
		{"between", 0, PadSize, 2 * PadSize, 0, false},
		{"overlaps stub", 0, 50, 10, 0, true},
		{"into payload", 0, PadSize, 2*PadSize + 1, 0, true},
		{"wraps", 0, PadSize, ^uint64(0), 0, true},
		{"version 1 without", 1, 0, 0, 0, false},
		{"version 1 with", 1, PadSize, 10, 0, true},
		{"packed helper", 0, PadSize, 100, 300, false},
		{"unpacked size without a helper", 0, 0, 0, 300, true},
		{"unpacked size too large", 0, PadSize, 100, MaxHelper + 1, true},
	} {
		tr := base
		tr.Version, tr.HelperOffset, tr.HelperSize, tr.HelperRawSize = tc.version, tc.off, tc.size, tc.raw
		b, err := tr.MarshalBinary()
		if (err != nil) != tc.wantErr || err != nil && !errors.Is(err, ErrTrailer) {
			t.Errorf("%s: MarshalBinary error %v, want error %v", tc.name, err, tc.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		file := append(make([]byte, 4*PadSize), b...)
		got, err := Read(bytes.NewReader(file), int64(len(file)))
		if err != nil {
			t.Errorf("%s: Read: %v", tc.name, err)
			continue
		}
		if want := max(tc.version, 1); tc.version == 0 && got.Version != Version || tc.version != 0 && got.Version != want {
			t.Errorf("%s: read version %d", tc.name, got.Version)
		}
		if got.HelperOffset != tc.off || got.HelperSize != tc.size || got.HelperRawSize != tc.raw {
			t.Errorf("%s: read helper [%d, +%d)", tc.name, got.HelperOffset, got.HelperSize)
		}
	}
}

func TestPlan(t *testing.T) {
	for _, c := range []struct {
		stub, helper int64
		want         Layout
	}{
		{1, 0, Layout{StubSize: 1, Offset: PadSize}},
		{PadSize, 0, Layout{StubSize: PadSize, Offset: PadSize}},
		{PadSize + 1, 0, Layout{StubSize: PadSize + 1, Offset: 2 * PadSize}},
		{100, 1, Layout{StubSize: 100, HelperOffset: PadSize, HelperSize: 1, Offset: 2 * PadSize}},
		{100, PadSize, Layout{StubSize: 100, HelperOffset: PadSize, HelperSize: PadSize, Offset: 2 * PadSize}},
		{16936, 1513810, Layout{StubSize: 16936, HelperOffset: 20480, HelperSize: 1513810, Offset: 1536000}},
	} {
		got := Plan(c.stub, c.helper)
		if got != c.want {
			t.Errorf("Plan(%d, %d) = %+v, want %+v", c.stub, c.helper, got, c.want)
		}
		tr := Trailer{Size: PadSize, Target: "t"}
		got.Apply(&tr)
		if err := tr.validate(); err != nil {
			t.Errorf("Plan(%d, %d): the trailer it lays out is refused: %v", c.stub, c.helper, err)
		}
	}
}

// TestPadSizes: the payload is aligned to the size the image pads itself
// to, so a payload ends where the next aligned part would begin.
func TestPadSizes(t *testing.T) {
	if PadSize != image.PadSize {
		t.Fatalf("trailer.PadSize %d, image.PadSize %d", PadSize, image.PadSize)
	}
}

// TestLimits: version 3 carries the run's default limits and reads them
// back; earlier versions cannot carry them, and still read without.
func TestLimits(t *testing.T) {
	lim := Limits{Memory: 100 << 20, MilliCPUs: 500, Pids: 50}
	for _, tc := range []struct {
		version uint16
		lim     Limits
		wantErr bool
	}{
		{0, lim, false},
		{3, lim, false},
		{3, Limits{}, false},
		{2, Limits{}, false},
		{2, Limits{Pids: 1}, true},
		{1, Limits{MilliCPUs: 1}, true},
		{3, Limits{Memory: MaxMemory, MilliCPUs: MaxMilliCPUs, Pids: MaxPids}, false},
		{3, Limits{Memory: MaxMemory + 1}, true},
		{3, Limits{MilliCPUs: MaxMilliCPUs + 1}, true},
		{3, Limits{Pids: MaxPids + 1}, true},
	} {
		tr := Trailer{Version: tc.version, StubSize: 100, Offset: PadSize, Size: PadSize, Target: "app", Limits: tc.lim}
		b, err := tr.MarshalBinary()
		if (err != nil) != tc.wantErr {
			t.Errorf("version %d, limits %+v: MarshalBinary error %v, want error %v", tc.version, tc.lim, err, tc.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		file := append(make([]byte, 2*PadSize), b...)
		got, err := Read(bytes.NewReader(file), int64(len(file)))
		if err != nil {
			t.Errorf("version %d: Read: %v", tc.version, err)
			continue
		}
		if got.Limits != tc.lim {
			t.Errorf("version %d: read limits %+v, wrote %+v", tc.version, got.Limits, tc.lim)
		}
	}
}
