//go:build !(verbs && cgo && linux)

package verbs

// Built reports whether this binary has the libibverbs layer: it was built
// without the verbs tag (or without cgo).
const Built = false

// Open fails: this binary has no libibverbs layer.
func Open(name string) (Device, error) { return nil, ErrNotBuilt }
