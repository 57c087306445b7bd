package image

import (
	"encoding/binary"
	"math/rand"
	"reflect"
	"testing"
)

// TestRecordLayout checks the hand-written record decoders against
// encoding/binary and the structs of format.go.
func TestRecordLayout(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, v := range []any{
		&Superblock{}, &inodeHeader{}, &dirInode{}, &ldirInode{}, &dirIndex{}, &fileInode{}, &lfileInode{},
		&symlinkInode{}, &devInode{}, &ipcInode{}, &dirHeader{}, &dirEntry{}, &fragmentEntry{}, &lz4Options{},
	} {
		if got, want := recordSize(v), binary.Size(v); got != want {
			t.Errorf("%T: recordSize %d, binary.Size %d", v, got, want)
			continue
		}
		b := make([]byte, recordSize(v))
		rng.Read(b)
		want := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if _, err := binary.Decode(b, binary.LittleEndian, want); err != nil {
			t.Fatal(err)
		}
		decodeRecord(b, v)
		if !reflect.DeepEqual(v, want) {
			t.Errorf("%T: decodeRecord %+v, binary.Decode %+v", v, v, want)
		}
	}
}
