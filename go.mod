module github.com/parkerpack/parker

go 1.26.8

require (
	github.com/diskfs/go-diskfs v1.9.4
	github.com/hanwen/go-fuse/v2 v2.12.1
	github.com/klauspost/compress v1.20.3
	github.com/moby/patternmatcher v0.6.1
	github.com/pierrec/lz4/v4 v4.1.33
	github.com/spf13/pflag v1.1.0
	github.com/ulikunitz/xz v0.5.17
	golang.org/x/sys v0.49.0
	golang.org/x/term v0.47.0
)

require (
	github.com/anchore/go-lzo v0.1.0 // indirect
	github.com/pkg/xattr v0.4.12 // indirect
)
