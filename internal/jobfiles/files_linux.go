//go:build linux && !parleyportable

package jobfiles

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// createExclusive creates path for this user alone, failing if anything
// (a file, a link, a FIFO) is already there.
func createExclusive(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openNoFollow opens path without following a link and without blocking
// (O_NONBLOCK makes the open of a FIFO return at once); checkOwned then
// refuses what is not a regular file.
func openNoFollow(path string, write bool) (*os.File, error) {
	flags := unix.O_RDONLY
	if write {
		flags = unix.O_RDWR
	}
	fd, err := unix.Open(path, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// checkOwned refuses a file that is not a regular file of this user, or
// whose size is implausible for a segment.
func checkOwned(f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("not a regular file (mode %#o)", st.Mode)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("owned by uid %d, not this user (%d)", st.Uid, os.Geteuid())
	case st.Size <= 0 || st.Size > 1<<34:
		return fmt.Errorf("implausible size of %d bytes", st.Size)
	}
	return nil
}

// allocate reserves size bytes of f, so that touching its pages later
// cannot fail.
func allocate(f *os.File, size int) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, int64(size))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return fmt.Errorf("%w: %v", errNoSpace, err)
	case errors.Is(err, unix.EOPNOTSUPP):
		// No fallocate here (not tmpfs): write the pages instead.
		zero := make([]byte, 1<<16)
		for off := 0; off < size; off += len(zero) {
			n := min(len(zero), size-off)
			if _, err := f.WriteAt(zero[:n], int64(off)); err != nil {
				if errors.Is(err, unix.ENOSPC) {
					return fmt.Errorf("%w: %v", errNoSpace, err)
				}
				return err
			}
		}
		return nil
	}
	return err
}

// room returns the bytes and inodes free in dir's file system, and whether
// it limits inodes.
func room(dir string) (free, inodes uint64, limited bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, false, err
	}
	return st.Bavail * uint64(st.Bsize), st.Ffree, st.Files > 0, nil
}

// ownedDir reports whether path is a directory (not a link) of this user.
func ownedDir(path string) bool {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR && int(st.Uid) == os.Geteuid()
}

// readSmall reads a small regular file without following links or
// blocking.
func readSmall(path string) ([]byte, error) {
	f, err := openNoFollow(path, false)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errors.New("not a regular file")
	}
	return io.ReadAll(io.LimitReader(f, 256))
}
