// Package elem says which Go types can travel between ranks as their
// bytes, and views vectors of them as bytes. Packages comm and collectives
// share it, so the rule is the same for messages and collectives.
//
// The rule: a type of fixed size without pointers: booleans, numbers, and
// arrays and structs of them (padding included: the size is Go's, the same
// on every rank of one binary). Strings, slices, maps, pointers, channels,
// functions and interfaces hold addresses that mean nothing in another
// process, so a type that has one anywhere, in any field, is refused, with
// an error that names the field. The check walks the type once; the answer
// is cached.
package elem

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unsafe"
)

// ErrPointer reports a type that holds pointers (see Check).
var ErrPointer = errors.New("type holds pointers")

var cache sync.Map // reflect.Type -> error (nil for a type that travels)

// Check reports whether T can travel as its bytes: nil if so, else an
// error wrapping ErrPointer that names the offending field.
func Check[T any]() error {
	var z T
	switch any(z).(type) {
	case float64, float32, int, int64, int32, int16, int8, uint, uint64, uint32, uint16, uint8,
		complex64, complex128, bool:
		return nil
	}
	t := reflect.TypeFor[T]()
	if v, ok := cache.Load(t); ok {
		if v == nil {
			return nil
		}
		return v.(error)
	}
	err := check(t, nil)
	if err != nil {
		err = fmt.Errorf("%w: %s: %v; only fixed-size types without pointers (numbers, bool, and arrays and structs of them) travel as bytes", ErrPointer, t, err)
		cache.Store(t, err)
		return err
	}
	cache.Store(t, nil)
	return nil
}

// check walks t; path names where it is, for the message.
func check(t reflect.Type, path []string) error {
	where := func() string {
		if len(path) == 0 {
			return "it"
		}
		return "field " + strings.Join(path, ".")
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return nil
	case reflect.Array:
		return check(t.Elem(), append(path, "[]"))
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if err := check(f.Type, append(path, f.Name)); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%s is a %s (%s)", where(), t.Kind(), t)
}

// Size is the size of one T in bytes.
func Size[T any]() int {
	var z T
	return int(unsafe.Sizeof(z))
}

// Bytes views xs as its bytes, without a copy; the view aliases xs. T must
// pass Check (a view of pointers would hide them from the garbage
// collector's point of view of the receiver).
func Bytes[T any](xs []T) []byte {
	if len(xs) == 0 {
		return []byte{}
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(xs))), len(xs)*int(unsafe.Sizeof(z)))
}
