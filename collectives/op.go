package collectives

import (
	"fmt"
	"math"
	"reflect"
	"unsafe"

	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/internal/elem"
	"github.com/parley-hpc/parley/internal/vec"
)

// An Op combines vectors element by element: Reduce(inout, in) sets
// inout[i] = inout[i] op in[i], where inout holds the values of lower
// ranks, in those of higher ranks.
type Op struct {
	kind        opKind
	name        string
	commutative bool
	user        any // func(inout, in []T) for user operators
}

type opKind uint8

const (
	opSum opKind = iota + 1
	opProd
	opMin
	opMax
	opBand
	opBor
	opBxor
	opLand
	opLor
	opLxor
	opMinLoc
	opMaxLoc
	opUser
)

// The predefined operators. Bitwise ones apply to integers, logical ones
// treat non-zero as true and give 1 or 0, and MinLoc/MaxLoc apply to Loc
// elements.
var (
	Sum    = Op{kind: opSum, name: "sum", commutative: true}
	Prod   = Op{kind: opProd, name: "prod", commutative: true}
	Min    = Op{kind: opMin, name: "min", commutative: true}
	Max    = Op{kind: opMax, name: "max", commutative: true}
	Band   = Op{kind: opBand, name: "band", commutative: true}
	Bor    = Op{kind: opBor, name: "bor", commutative: true}
	Bxor   = Op{kind: opBxor, name: "bxor", commutative: true}
	Land   = Op{kind: opLand, name: "land", commutative: true}
	Lor    = Op{kind: opLor, name: "lor", commutative: true}
	Lxor   = Op{kind: opLxor, name: "lxor", commutative: true}
	MinLoc = Op{kind: opMinLoc, name: "minloc", commutative: true}
	MaxLoc = Op{kind: opMaxLoc, name: "maxloc", commutative: true}
)

// UserOp makes an operator from f, which must set inout[i] to
// inout[i] op in[i] for every i. A non-commutative operator is applied in
// rank order (the lower rank's values on the left) and restricts the
// algorithms to order-preserving ones.
func UserOp[T Elem](f func(inout, in []T), commutative bool) Op {
	return Op{kind: opUser, name: "user", commutative: commutative, user: f}
}

// String names the operator.
func (op Op) String() string { return op.name }

// Commutative reports whether the operator may combine in any order.
func (op Op) Commutative() bool { return op.commutative }

// exactlyCommutative reports whether a op b and b op a give the same bits
// (true of the predefined operators: IEEE addition, multiplication, min
// and max are commutative bit for bit), so that an algorithm may combine
// in place whichever side a value comes from.
func (op Op) exactlyCommutative() bool { return op.kind != opUser }

// Loc is a value with the rank (or index) it came from, for MinLoc and
// MaxLoc: the result is the extreme value and, among equal values, the
// smallest Index.
type Loc[T comm.Number] struct {
	Value T
	Index int64
}

// Elem is what collectives move: any fixed-size type without pointers
// (numbers, bool, and arrays and structs of them), as package comm's typed
// messages. A type with a pointer anywhere is refused, naming the field,
// before any communication. The predefined operators apply to numbers
// (MinLoc and MaxLoc to Loc pairs); UserOp makes an operator for any
// element type, structs included, and is always called on whole elements.
type Elem = any

// checkType reports whether T can travel, before any communication: every
// rank finds the same.
func checkType[T Elem]() error {
	if err := elem.Check[T](); err != nil {
		return fmt.Errorf("%w: %w", comm.ErrInvalidArg, err)
	}
	return nil
}

// checkOp reports whether op applies to T, before any communication: a
// rank that found out halfway through would leave its peers waiting.
func checkOp[T Elem](op Op) error {
	var z T
	if op.kind == opUser {
		if _, ok := op.user.(func(inout, in []T)); !ok {
			return fmt.Errorf("%w: user operator for %T used on %s", comm.ErrInvalidArg, op.user, typeName[T]())
		}
		return nil
	}
	if op.kind == opMinLoc || op.kind == opMaxLoc {
		if !isLoc(any(z)) {
			return notFor(op, typeName[T]())
		}
		return nil
	}
	if isLoc(any(z)) {
		return notFor(op, "Loc pairs (use MinLoc or MaxLoc)")
	}
	switch kindOf[T]() {
	case reflect.Float32, reflect.Float64:
		if op.kind == opBand || op.kind == opBor || op.kind == opBxor {
			return notFor(op, "floating-point numbers")
		}
	case reflect.Complex64, reflect.Complex128:
		if op.kind != opSum && op.kind != opProd {
			return notFor(op, "complex numbers")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
	default:
		return fmt.Errorf("%w: operator %s applies to numbers, not to %s: make an operator for it with collectives.UserOp",
			comm.ErrInvalidArg, op, typeName[T]())
	}
	return nil
}

func isLoc(v any) bool {
	switch v.(type) {
	case Loc[float64], Loc[float32], Loc[int], Loc[int64], Loc[int32], Loc[uint64], Loc[uint32]:
		return true
	}
	return false
}

// apply computes inout = inout op in.
func apply[T Elem](op Op, inout, in []T) error {
	if len(inout) != len(in) {
		panic("collectives: apply on vectors of different lengths") // an algorithm bug
	}
	if op.kind == opUser {
		f, ok := op.user.(func(inout, in []T))
		if !ok {
			return fmt.Errorf("%w: user operator for %T used on %s", comm.ErrInvalidArg, op.user, typeName[T]())
		}
		f(inout, in)
		return nil
	}
	if len(inout) == 0 {
		return nil
	}
	p, q := unsafe.Pointer(unsafe.SliceData(inout)), unsafe.Pointer(unsafe.SliceData(in))
	n := len(inout)
	// Named types (type Meters float64) share their kernels with the
	// underlying type: the element layout is the same.
	switch any(inout).(type) {
	case []Loc[float64]:
		return locKernel(op, (*Loc[float64])(p), (*Loc[float64])(q), n)
	case []Loc[float32]:
		return locKernel(op, (*Loc[float32])(p), (*Loc[float32])(q), n)
	case []Loc[int]:
		return locKernel(op, (*Loc[int])(p), (*Loc[int])(q), n)
	case []Loc[int64]:
		return locKernel(op, (*Loc[int64])(p), (*Loc[int64])(q), n)
	case []Loc[int32]:
		return locKernel(op, (*Loc[int32])(p), (*Loc[int32])(q), n)
	case []Loc[uint64]:
		return locKernel(op, (*Loc[uint64])(p), (*Loc[uint64])(q), n)
	case []Loc[uint32]:
		return locKernel(op, (*Loc[uint32])(p), (*Loc[uint32])(q), n)
	}
	switch kindOf[T]() {
	case reflect.Float64:
		return floatKernel(op, unsafe.Slice((*float64)(p), n), unsafe.Slice((*float64)(q), n))
	case reflect.Float32:
		return floatKernel(op, unsafe.Slice((*float32)(p), n), unsafe.Slice((*float32)(q), n))
	case reflect.Int:
		return intKernel(op, unsafe.Slice((*int)(p), n), unsafe.Slice((*int)(q), n))
	case reflect.Int8:
		return intKernel(op, unsafe.Slice((*int8)(p), n), unsafe.Slice((*int8)(q), n))
	case reflect.Int16:
		return intKernel(op, unsafe.Slice((*int16)(p), n), unsafe.Slice((*int16)(q), n))
	case reflect.Int32:
		return intKernel(op, unsafe.Slice((*int32)(p), n), unsafe.Slice((*int32)(q), n))
	case reflect.Int64:
		return intKernel(op, unsafe.Slice((*int64)(p), n), unsafe.Slice((*int64)(q), n))
	case reflect.Uint:
		return intKernel(op, unsafe.Slice((*uint)(p), n), unsafe.Slice((*uint)(q), n))
	case reflect.Uint8:
		return intKernel(op, unsafe.Slice((*uint8)(p), n), unsafe.Slice((*uint8)(q), n))
	case reflect.Uint16:
		return intKernel(op, unsafe.Slice((*uint16)(p), n), unsafe.Slice((*uint16)(q), n))
	case reflect.Uint32:
		return intKernel(op, unsafe.Slice((*uint32)(p), n), unsafe.Slice((*uint32)(q), n))
	case reflect.Uint64:
		return intKernel(op, unsafe.Slice((*uint64)(p), n), unsafe.Slice((*uint64)(q), n))
	case reflect.Complex64:
		return complexKernel(op, unsafe.Slice((*complex64)(p), n), unsafe.Slice((*complex64)(q), n))
	case reflect.Complex128:
		return complexKernel(op, unsafe.Slice((*complex128)(p), n), unsafe.Slice((*complex128)(q), n))
	}
	return fmt.Errorf("%w: no %s for %s", comm.ErrInvalidArg, op, typeName[T]())
}

// kindOf returns T's kind: by a type switch for the common types (cheap),
// else through reflect (named types such as "type Meters float64").
func kindOf[T any]() reflect.Kind {
	var z T
	switch any(z).(type) {
	case float64:
		return reflect.Float64
	case float32:
		return reflect.Float32
	case int:
		return reflect.Int
	case int64:
		return reflect.Int64
	case int32:
		return reflect.Int32
	case uint8:
		return reflect.Uint8
	case uint64:
		return reflect.Uint64
	case uint32:
		return reflect.Uint32
	}
	return reflect.TypeFor[T]().Kind()
}

func typeName[T any]() string { return reflect.TypeFor[T]().String() }

func notFor(op Op, what string) error {
	return fmt.Errorf("%w: operator %s does not apply to %s", comm.ErrInvalidArg, op, what)
}

type float interface{ ~float32 | ~float64 }

type integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

func floatKernel[T float](op Op, d, s []T) error {
	switch op.kind {
	case opSum:
		// Vectorized where the CPU allows (internal/vec): the same bits
		// as the loop below, several times faster.
		switch dd := any(d).(type) {
		case []float32:
			vec.AddFloat32(dd, any(s).([]float32))
		case []float64:
			vec.AddFloat64(dd, any(s).([]float64))
		default:
			for i := range d {
				d[i] += s[i]
			}
		}
	case opProd:
		for i := range d {
			d[i] *= s[i]
		}
	case opMin:
		for i := range d {
			d[i] = T(math.Min(float64(d[i]), float64(s[i])))
		}
	case opMax:
		for i := range d {
			d[i] = T(math.Max(float64(d[i]), float64(s[i])))
		}
	case opLand, opLor, opLxor:
		for i := range d {
			d[i] = T(logical(op.kind, d[i] != 0, s[i] != 0))
		}
	default:
		return notFor(op, "floating-point numbers")
	}
	return nil
}

func intKernel[T integer](op Op, d, s []T) error {
	switch op.kind {
	case opSum:
		for i := range d {
			d[i] += s[i]
		}
	case opProd:
		for i := range d {
			d[i] *= s[i]
		}
	case opMin:
		for i := range d {
			d[i] = min(d[i], s[i])
		}
	case opMax:
		for i := range d {
			d[i] = max(d[i], s[i])
		}
	case opBand:
		for i := range d {
			d[i] &= s[i]
		}
	case opBor:
		for i := range d {
			d[i] |= s[i]
		}
	case opBxor:
		for i := range d {
			d[i] ^= s[i]
		}
	case opLand, opLor, opLxor:
		for i := range d {
			d[i] = T(logical(op.kind, d[i] != 0, s[i] != 0))
		}
	default:
		return notFor(op, "integers")
	}
	return nil
}

func complexKernel[T ~complex64 | ~complex128](op Op, d, s []T) error {
	switch op.kind {
	case opSum:
		for i := range d {
			d[i] += s[i]
		}
	case opProd:
		for i := range d {
			d[i] *= s[i]
		}
	default:
		return notFor(op, "complex numbers")
	}
	return nil
}

func logical(k opKind, a, b bool) int {
	var r bool
	switch k {
	case opLand:
		r = a && b
	case opLor:
		r = a || b
	default:
		r = a != b
	}
	if r {
		return 1
	}
	return 0
}

type ordered interface{ integer | float }

func locKernel[T ordered](op Op, p, q *Loc[T], n int) error {
	d, s := unsafe.Slice(p, n), unsafe.Slice(q, n)
	switch op.kind {
	case opMinLoc:
		for i := range d {
			if s[i].Value < d[i].Value || s[i].Value == d[i].Value && s[i].Index < d[i].Index {
				d[i] = s[i]
			}
		}
	case opMaxLoc:
		for i := range d {
			if s[i].Value > d[i].Value || s[i].Value == d[i].Value && s[i].Index < d[i].Index {
				d[i] = s[i]
			}
		}
	default:
		return notFor(op, "Loc pairs (use MinLoc or MaxLoc)")
	}
	return nil
}

// asBytes views a vector as bytes, without a copy.
func asBytes[T Elem](xs []T) []byte { return elem.Bytes(xs) }

func elemSize[T Elem]() int { return elem.Size[T]() }

// copyElems is copy for the collectives' blocks: long ones go through
// vec.Copy, which keeps the destination in the cache where copy would
// write around it (see there).
func copyElems[T Elem](dst, src []T) int {
	n := min(len(dst), len(src))
	if n*elemSize[T]() < vec.CopyPiecesMin {
		return copy(dst, src) // what vec.Copy would do, without the byte views
	}
	vec.Copy(elem.Bytes(dst[:n]), elem.Bytes(src[:n]))
	return n
}
