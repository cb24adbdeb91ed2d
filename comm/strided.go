package comm

import "fmt"

// Strided describes Count blocks of BlockLen elements each, Stride
// elements apart, starting at Offset (MPI_Type_vector). In a row-major
// rows x cols matrix, column j is Strided{Offset: j, Count: rows,
// BlockLen: 1, Stride: cols}, and row i is Strided{Offset: i*cols,
// Count: 1, BlockLen: cols, Stride: cols}.
type Strided struct {
	Offset, Count, BlockLen, Stride int
}

// Len is the number of elements s selects.
func (s Strided) Len() int { return s.Count * s.BlockLen }

func (s Strided) check(n int) error {
	last := s.Offset + (s.Count-1)*s.Stride + s.BlockLen
	if s.Offset < 0 || s.Count < 0 || s.BlockLen < 0 || s.Stride < s.BlockLen || s.Count > 0 && last > n {
		return fmt.Errorf("%w: %+v does not fit %d elements", ErrInvalidArg, s, n)
	}
	return nil
}

// Pack copies the elements of src that s selects into dst, in order, and
// returns dst[:s.Len()]; dst must hold s.Len() elements. It is how a
// column (or any strided part) of a matrix is sent: pack it, send the
// packed slice.
func Pack[T any](dst, src []T, s Strided) ([]T, error) {
	if err := s.check(len(src)); err != nil {
		return nil, err
	}
	if len(dst) < s.Len() {
		return nil, fmt.Errorf("%w: Pack of %d elements into %d", ErrInvalidArg, s.Len(), len(dst))
	}
	k := 0
	for i := 0; i < s.Count; i++ {
		off := s.Offset + i*s.Stride
		k += copy(dst[k:k+s.BlockLen], src[off:off+s.BlockLen])
	}
	return dst[:k], nil
}

// Unpack copies packed elements (s.Len() of them) into the places of dst
// that s selects: the other half of Pack.
func Unpack[T any](dst, packed []T, s Strided) error {
	if err := s.check(len(dst)); err != nil {
		return err
	}
	if len(packed) < s.Len() {
		return fmt.Errorf("%w: Unpack of %d elements from %d", ErrInvalidArg, s.Len(), len(packed))
	}
	k := 0
	for i := 0; i < s.Count; i++ {
		off := s.Offset + i*s.Stride
		k += copy(dst[off:off+s.BlockLen], packed[k:k+s.BlockLen])
	}
	return nil
}
