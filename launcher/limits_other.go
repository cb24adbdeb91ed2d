//go:build !linux || parleyportable

package launcher

// Process limits are read on Linux only (limits_linux.go).

const goRuntimeThreads = 4

type limit struct {
	what  string
	avail int64
}

func taskLimits() []limit          { return nil }
func isGoProgram(path string) bool { return false }
