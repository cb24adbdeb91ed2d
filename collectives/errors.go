package collectives

import (
	"errors"

	"github.com/parley-hpc/parley/comm"
)

func asTruncated(err error, te **comm.TruncatedError) bool { return errors.As(err, te) }
