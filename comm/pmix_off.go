//go:build !pmix || !cgo

package comm

import "errors"

// This build has no PMIx client (build with -tags pmix and cgo for one):
// a PMIx environment is reported by foreignLauncher instead.

func pmixAvailable() bool { return false }

func connectPMIx() (pmiClient, int, int, string, error) {
	return nil, 0, 0, "", errors.New("this build has no PMIx client")
}

const pmixInBuild = false
